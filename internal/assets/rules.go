package assets

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// Limits of _redirects and _headers (Cloudflare's).
const (
	MaxRedirects    = 2100 // 2,000 static and 100 dynamic rules
	MaxHeaderRules  = 100
	maxRuleLineSize = 1000
)

// pattern is a path pattern of _redirects or _headers: literal, with at
// most one '*' (the splat) and :placeholders, each a path segment.
type pattern struct {
	raw string
	re  *regexp.Regexp // nil: a literal path
}

var placeholderRE = regexp.MustCompile(`:[A-Za-z]\w*`)

func compilePattern(p string) (pattern, error) {
	if !strings.HasPrefix(p, "/") {
		return pattern{}, fmt.Errorf("%q does not start with '/'", p)
	}
	if strings.Count(p, "*") > 1 {
		return pattern{}, fmt.Errorf("%q has more than one '*'", p)
	}
	if !strings.Contains(p, "*") && !placeholderRE.MatchString(p) {
		return pattern{raw: p}, nil
	}
	var re strings.Builder
	re.WriteString("^")
	rest := p
	for rest != "" {
		switch loc := placeholderRE.FindStringIndex(rest); {
		case strings.HasPrefix(rest, "*"):
			re.WriteString("(?P<splat>.*)")
			rest = rest[1:]
		case loc != nil && loc[0] == 0:
			re.WriteString("(?P<" + rest[1:loc[1]] + ">[^/]+)")
			rest = rest[loc[1]:]
		default:
			end := len(rest)
			if i := strings.IndexAny(rest, "*:"); i > 0 {
				end = i
			} else if i == 0 { // a ':' that starts no placeholder
				end = 1
			}
			re.WriteString(regexp.QuoteMeta(rest[:end]))
			rest = rest[end:]
		}
	}
	re.WriteString("$")
	c, err := regexp.Compile(re.String())
	if err != nil {
		return pattern{}, fmt.Errorf("%q: %v", p, err)
	}
	return pattern{raw: p, re: c}, nil
}

// match reports whether path matches and returns the placeholders' values
// (the splat as "splat").
func (p pattern) match(path string) (map[string]string, bool) {
	if p.re == nil {
		return nil, p.raw == path
	}
	m := p.re.FindStringSubmatch(path)
	if m == nil {
		return nil, false
	}
	vals := map[string]string{}
	for i, name := range p.re.SubexpNames() {
		if name != "" {
			vals[name] = m[i]
		}
	}
	return vals, true
}

// substitute fills :splat and :placeholders of s with vals.
func substitute(s string, vals map[string]string) string {
	return placeholderRE.ReplaceAllStringFunc(s, func(ph string) string {
		if v, ok := vals[ph[1:]]; ok {
			return v
		}
		return ph
	})
}

// RedirectRule is one line of _redirects: from → to with a status; 200
// serves the asset at to (a rewrite) instead of redirecting.
type RedirectRule struct {
	from   pattern
	to     string
	status int
}

// ParseRedirects reads a _redirects file: "from to [status]" per line,
// '#' comments; status 301, 302 (the default), 303, 307, 308 or 200.
func ParseRedirects(text string) ([]RedirectRule, error) {
	var out []RedirectRule
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if len(line) > maxRuleLineSize {
			return nil, fmt.Errorf("_redirects line %d is longer than %d characters", n+1, maxRuleLineSize)
		}
		f := strings.Fields(line)
		if len(f) < 2 || len(f) > 3 {
			return nil, fmt.Errorf("_redirects line %d: want \"/from /to [status]\", got %q", n+1, line)
		}
		status := http.StatusFound
		if len(f) == 3 {
			s, err := strconv.Atoi(f[2])
			if err != nil || (s != 200 && s != 301 && s != 302 && s != 303 && s != 307 && s != 308) {
				return nil, fmt.Errorf("_redirects line %d: status %q is not one of 200, 301, 302, 303, 307, 308", n+1, f[2])
			}
			status = s
		}
		from, err := compilePattern(f[0])
		if err != nil {
			return nil, fmt.Errorf("_redirects line %d: %v", n+1, err)
		}
		if status == http.StatusOK && (!strings.HasPrefix(f[1], "/") || strings.Contains(f[1], "://")) {
			return nil, fmt.Errorf("_redirects line %d: a 200 rewrite must go to a path of the site", n+1)
		}
		out = append(out, RedirectRule{from: from, to: f[1], status: status})
		if len(out) > MaxRedirects {
			return nil, fmt.Errorf("_redirects has more than %d rules", MaxRedirects)
		}
	}
	return out, nil
}

// redirect returns the first rule matching path: the target and status.
func redirect(rules []RedirectRule, path string) (string, int, bool) {
	for _, r := range rules {
		if vals, ok := r.from.match(path); ok {
			return substitute(r.to, vals), r.status, true
		}
	}
	return "", 0, false
}

// HeaderRule is one block of _headers: headers set on (or, with '!',
// removed from) the responses of the asset paths that match.
type HeaderRule struct {
	path  pattern
	set   [][2]string
	unset []string
}

// ParseHeaders reads a _headers file: a path pattern on a line of its own,
// then indented "Name: value" lines ("! Name" removes a header).
func ParseHeaders(text string) ([]HeaderRule, error) {
	var out []HeaderRule
	for n, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if len(line) > maxRuleLineSize {
			return nil, fmt.Errorf("_headers line %d is longer than %d characters", n+1, maxRuleLineSize)
		}
		if line[0] != ' ' && line[0] != '\t' {
			p, err := compilePattern(trimmed)
			if err != nil {
				return nil, fmt.Errorf("_headers line %d: %v", n+1, err)
			}
			out = append(out, HeaderRule{path: p})
			if len(out) > MaxHeaderRules {
				return nil, fmt.Errorf("_headers has more than %d rules", MaxHeaderRules)
			}
			continue
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("_headers line %d: a header before any path", n+1)
		}
		r := &out[len(out)-1]
		if name, ok := strings.CutPrefix(trimmed, "!"); ok {
			r.unset = append(r.unset, strings.TrimSpace(name))
			continue
		}
		name, value, ok := strings.Cut(trimmed, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return nil, fmt.Errorf("_headers line %d: want \"Name: value\", got %q", n+1, trimmed)
		}
		r.set = append(r.set, [2]string{strings.TrimSpace(name), strings.TrimSpace(value)})
	}
	return out, nil
}

// applyHeaders sets the headers of every rule matching path on h.
func applyHeaders(rules []HeaderRule, path string, h http.Header) {
	for _, r := range rules {
		vals, ok := r.path.match(path)
		if !ok {
			continue
		}
		for _, kv := range r.set {
			h.Add(kv[0], substitute(kv[1], vals))
		}
		for _, name := range r.unset {
			h.Del(name)
		}
	}
}
