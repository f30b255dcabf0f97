package chaos

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Sample is one scrape of a Prometheus text endpoint: each series, written as the
// endpoint wrote it (name{labels}), with its value.
type Sample struct {
	At     time.Time
	Series map[string]float64
}

var scrapeClient = &http.Client{Timeout: 2 * time.Second}

// Scrape reads url (a /metrics endpoint) once.
func Scrape(url string) (Sample, error) {
	resp, err := scrapeClient.Get(url)
	if err != nil {
		return Sample{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Sample{}, fmt.Errorf("scrape %s: status %s", url, resp.Status)
	}
	return ParseMetrics(resp.Body)
}

// ParseMetrics reads the Prometheus text format; comments and malformed lines are skipped.
func ParseMetrics(r io.Reader) (Sample, error) {
	s := Sample{At: time.Now(), Series: map[string]float64{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i <= 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		s.Series[line[:i]] = v
	}
	return s, sc.Err()
}

// Sum adds the values of the series named name whose labels contain every one of labels
// (each written as key="value").
func (s Sample) Sum(name string, labels ...string) float64 {
	var total float64
	for k, v := range s.Series {
		if k != name && !strings.HasPrefix(k, name+"{") {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(k, l) {
				ok = false
				break
			}
		}
		if ok {
			total += v
		}
	}
	return total
}

// Increase is how much a counter grew over samples, taken in order, counting a drop (a
// restarted process) as a reset to zero.
func Increase(samples []Sample, name string, labels ...string) float64 {
	var total, prev float64
	for i, s := range samples {
		v := s.Sum(name, labels...)
		switch {
		case i == 0:
		case v >= prev:
			total += v - prev
		default:
			total += v
		}
		prev = v
	}
	return total
}

// Max is the largest value of a gauge over samples.
func Max(samples []Sample, name string, labels ...string) float64 {
	var m float64
	for _, s := range samples {
		if v := s.Sum(name, labels...); v > m {
			m = v
		}
	}
	return m
}
