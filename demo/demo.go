// Package demo is the small upstream service `coinop dev` puts behind the
// gateway: one free route and three priced ones (one of them also in
// prepaid credits), each answering JSON.
package demo

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// Routes lists the demo's routes as the dev gateway prices them.
var Routes = []struct {
	Pattern, Price, Description string
}{
	{"GET /", "", "what this demo is"},
	{"GET /weather", "0.001 USDC", "current weather, made up"},
	{"GET /report", "0.01 USDC", "a longer report, made up"},
	{"GET /quote", "1 credit or 0.001 USDC", "a quote of the day"},
}

// Handler returns the demo upstream. now is its clock.
func Handler(now func() time.Time) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{
			"service": "coinop demo upstream",
			"free":    "/",
			"priced":  []string{"/weather (0.001 USDC)", "/report (0.01 USDC)", "/quote (1 credit, or 0.001 USDC)", "/forecast (0.002 USDC or 20 sat)"},
		})
	})
	mux.HandleFunc("GET /weather", func(w http.ResponseWriter, r *http.Request) {
		t := now()
		writeJSON(w, map[string]any{
			"city": "Lisbon", "at": t.UTC().Format(time.RFC3339),
			"temperatureC": 14 + t.Minute()%10, "sky": "clear",
		})
	})
	mux.HandleFunc("GET /forecast", func(w http.ResponseWriter, r *http.Request) {
		t := now()
		days := make([]map[string]any, 7)
		for i := range days {
			d := t.AddDate(0, 0, i+1)
			days[i] = map[string]any{"date": d.UTC().Format("2006-01-02"), "temperatureC": 12 + (d.YearDay()+i)%9, "sky": []string{"clear", "cloudy", "rain"}[d.YearDay()%3]}
		}
		writeJSON(w, map[string]any{"city": "Lisbon", "days": days})
	})
	mux.HandleFunc("GET /quote", func(w http.ResponseWriter, r *http.Request) {
		quotes := []string{"Simplicity is prerequisite for reliability.", "Make it work, make it right, make it fast.", "Measure twice, cut once."}
		writeJSON(w, map[string]any{"quote": quotes[now().Second()%len(quotes)]})
	})
	mux.HandleFunc("GET /report", func(w http.ResponseWriter, r *http.Request) {
		n := 100
		if s := r.URL.Query().Get("lines"); s != "" {
			if v, err := strconv.Atoi(s); err == nil && v > 0 && v <= 100000 {
				n = v
			}
		}
		lines := make([]string, n)
		for i := range lines {
			lines[i] = "line " + strconv.Itoa(i+1) + ": all systems nominal"
		}
		writeJSON(w, map[string]any{"title": "Daily report", "lines": lines})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
