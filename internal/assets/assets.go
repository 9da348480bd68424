// Package assets decides how a request is answered from a Worker's static
// assets, with Cloudflare's rules (Workers Static Assets): html_handling
// (the trailing-slash and .html redirects), not_found_handling (a 404 page,
// or a single-page application's index.html) and run_worker_first; and
// serves the chosen file with an ETag, answering If-None-Match with 304.
// Where the files come from is the caller's: a manifest lookup and a File
// opener.
package assets

import (
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
)

// html_handling values.
const (
	AutoTrailingSlash  = "auto-trailing-slash"
	ForceTrailingSlash = "force-trailing-slash"
	DropTrailingSlash  = "drop-trailing-slash"
	NoHTMLHandling     = "none"
)

// not_found_handling values.
const (
	NotFoundNone = "none"
	NotFound404  = "404-page"
	NotFoundSPA  = "single-page-application"
)

// Config is how a version's assets are served.
type Config struct {
	HTMLHandling     string // default AutoTrailingSlash
	NotFoundHandling string // default NotFoundNone
	// RunWorkerFirst sends every request to the Worker; RunWorkerFirstPaths
	// only those whose path matches a pattern ('*' matches anything; a
	// pattern starting with '!' excludes).
	RunWorkerFirst      bool
	RunWorkerFirstPaths []string
	// Redirects and Headers are the rules of _redirects and _headers
	// (ParseRedirects, ParseHeaders).
	Redirects []RedirectRule `json:"-"`
	Headers   []HeaderRule   `json:"-"`
}

// Kind is what a Decision does.
type Kind int

// Kinds of Decision.
const (
	// Miss: no asset answers; the Worker does, or a bare 404.
	Miss Kind = iota
	// Serve the file at Path with Status (200, or 404 for a 404 page).
	Serve
	// Redirect to Location (307), as html_handling asks.
	Redirect
)

// Decision is how to answer one request.
type Decision struct {
	Kind     Kind
	Path     string // the manifest path served
	Status   int
	Location string
}

// WorkerFirst reports whether the request goes to the Worker before any
// asset is looked up.
func (c Config) WorkerFirst(p string) bool {
	if c.RunWorkerFirst {
		return true
	}
	match := false
	for _, pat := range c.RunWorkerFirstPaths {
		if neg, ok := strings.CutPrefix(pat, "!"); ok {
			if glob(neg, p) {
				return false
			}
			continue
		}
		match = match || glob(pat, p)
	}
	return match
}

// glob matches p against a pattern where '*' matches any run of characters.
func glob(pat, p string) bool {
	parts := strings.Split(pat, "*")
	if len(parts) == 1 {
		return pat == p
	}
	if !strings.HasPrefix(p, parts[0]) {
		return false
	}
	p = p[len(parts[0]):]
	for _, mid := range parts[1 : len(parts)-1] {
		i := strings.Index(p, mid)
		if i < 0 {
			return false
		}
		p = p[i+len(mid):]
	}
	return strings.HasSuffix(p, parts[len(parts)-1])
}

// Resolve decides how the asset path p (the URL's decoded path) is
// answered; has reports whether the manifest holds a path. It does not
// apply not_found_handling: see NotFound.
func (c Config) Resolve(p string, has func(string) bool) Decision {
	serve := func(f string) Decision { return Decision{Kind: Serve, Path: f, Status: http.StatusOK} }
	redirect := func(to string) Decision {
		return Decision{Kind: Redirect, Location: to, Status: http.StatusTemporaryRedirect}
	}
	isHTML := strings.HasSuffix(p, ".html")
	if has(p) && (!isHTML || c.HTMLHandling == NoHTMLHandling) {
		return serve(p)
	}
	dir := strings.HasSuffix(p, "/")
	trimmed := strings.TrimSuffix(p, "/")
	switch c.HTMLHandling {
	case NoHTMLHandling:
		return Decision{}
	case ForceTrailingSlash:
		switch {
		case dir && has(p+"index.html"):
			return serve(p + "index.html")
		case dir && p != "/" && has(trimmed+".html"):
			return serve(trimmed + ".html")
		case strings.HasSuffix(p, "/index.html") && has(p):
			return redirect(strings.TrimSuffix(p, "index.html"))
		case isHTML && has(p):
			return redirect(strings.TrimSuffix(p, ".html") + "/")
		case !dir && !isHTML && (has(p+".html") || has(p+"/index.html")):
			return redirect(p + "/")
		}
	case DropTrailingSlash:
		switch {
		case p == "/" && has("/index.html"):
			return serve("/index.html")
		case dir && p != "/" && (has(trimmed+".html") || has(p+"index.html")):
			return redirect(trimmed)
		case strings.HasSuffix(p, "/index.html") && has(p):
			return redirect(dirOf(p))
		case isHTML && has(p):
			return redirect(strings.TrimSuffix(p, ".html"))
		case !dir && !isHTML && has(p+".html"):
			return serve(p + ".html")
		case !dir && !isHTML && has(p+"/index.html"):
			return serve(p + "/index.html")
		}
	default: // auto-trailing-slash
		switch {
		case dir && has(p+"index.html"):
			return serve(p + "index.html")
		case dir && p != "/" && has(trimmed+".html"):
			return redirect(trimmed)
		case strings.HasSuffix(p, "/index.html") && has(p):
			return redirect(strings.TrimSuffix(p, "index.html"))
		case isHTML && has(p):
			return redirect(strings.TrimSuffix(p, ".html"))
		case !dir && !isHTML && has(p+".html"):
			return serve(p + ".html")
		case !dir && !isHTML && has(p+"/index.html"):
			return redirect(p + "/")
		}
	}
	return Decision{}
}

// dirOf is "/a/b" for "/a/b/index.html", "/" for "/index.html".
func dirOf(p string) string {
	d := strings.TrimSuffix(strings.TrimSuffix(p, "index.html"), "/")
	if d == "" {
		return "/"
	}
	return d
}

// NotFound applies not_found_handling to a path no asset answered: a
// single-page application gets /index.html (200), a 404 page the nearest
// 404.html up the path (404); otherwise Miss.
func (c Config) NotFound(p string, has func(string) bool) Decision {
	switch c.NotFoundHandling {
	case NotFoundSPA:
		if has("/index.html") {
			return Decision{Kind: Serve, Path: "/index.html", Status: http.StatusOK}
		}
	case NotFound404:
		for d := path.Dir(p); ; d = path.Dir(d) {
			f := strings.TrimSuffix(d, "/") + "/404.html"
			if has(f) {
				return Decision{Kind: Serve, Path: f, Status: http.StatusNotFound}
			}
			if d == "/" || d == "." {
				break
			}
		}
	}
	return Decision{}
}

// NoContentType is the media type wrangler uploads a file with when it
// knows none: the file is served without a Content-Type.
const NoContentType = "application/null"

// File is an asset file to serve.
type File struct {
	Body io.ReadCloser
	// ContentType is the type wrangler uploaded it with (NoContentType:
	// none); "" guesses it from the name's extension.
	ContentType string
	Size        int64
}

// ETag is the entity tag of a file: its hash, quoted.
func ETag(hash string) string { return `"` + hash + `"` }

// Write answers r with the file of hash, opened by open when needed:
// status (200, or 404 for a 404 page), its ETag and Cache-Control, 304 when
// If-None-Match names it, no body for HEAD.
func Write(w http.ResponseWriter, r *http.Request, hash string, status int, name string, open func() (File, error)) error {
	h := w.Header()
	etag := ETag(hash)
	h.Set("ETag", etag)
	if h.Get("Cache-Control") == "" { // _headers may set its own
		h.Set("Cache-Control", "public, max-age=0, must-revalidate")
	}
	if status == http.StatusOK && matches(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	f, err := open()
	if err != nil {
		return err
	}
	defer f.Body.Close()
	switch ct := f.ContentType; ct {
	case NoContentType:
		h["Content-Type"] = nil // no sniffing either
	case "":
		if ct = mime.TypeByExtension(path.Ext(name)); ct != "" {
			h.Set("Content-Type", ct)
		}
	default:
		h.Set("Content-Type", ct)
	}
	h.Set("Content-Length", strconv.FormatInt(f.Size, 10))
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return nil
	}
	_, err = io.Copy(w, f.Body)
	return err
}

// matches reports whether an If-None-Match header names etag (or is *).
func matches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(t), "W/"))
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

// Site is one version's assets: the hash of a path's file, and the file of
// a hash.
type Site struct {
	Hash func(path string) (string, bool)
	Open func(hash string) (File, error)
}

// Answer answers a GET or HEAD r from site with cfg's rules and reports
// true. With worker set (the version has code), a path no file answers is
// left to the Worker: Answer writes nothing and reports false; without it,
// not_found_handling applies, then a bare 404. A file that cannot be opened
// is returned as an error with false: nothing was written, the caller
// answers the error; an error after that (a broken copy) comes with true.
func Answer(w http.ResponseWriter, r *http.Request, cfg Config, site Site, worker bool) (bool, error) {
	has := func(p string) bool { _, ok := site.Hash(p); return ok }
	p := r.URL.Path
	if to, status, ok := redirect(cfg.Redirects, p); ok {
		if status != http.StatusOK {
			to = location(to)
			if r.URL.RawQuery != "" && !strings.Contains(to, "?") {
				to += "?" + r.URL.RawQuery
			}
			w.Header().Set("Location", to)
			w.WriteHeader(status)
			return true, nil
		}
		p = to // a rewrite: the file at to answers
	}
	d := cfg.Resolve(p, has)
	if p != r.URL.Path && has(p) {
		d = Decision{Kind: Serve, Path: p, Status: http.StatusOK} // rewritten to a file: no html_handling redirect
	}
	if d.Kind == Miss {
		if worker {
			return false, nil
		}
		d = cfg.NotFound(p, has)
	}
	switch d.Kind {
	case Redirect:
		loc := location(d.Location)
		if r.URL.RawQuery != "" {
			loc += "?" + r.URL.RawQuery
		}
		w.Header().Set("Location", loc)
		w.WriteHeader(d.Status)
	case Serve:
		hash, _ := site.Hash(d.Path)
		applyHeaders(cfg.Headers, r.URL.Path, w.Header())
		opened := false
		err := Write(w, r, hash, d.Status, d.Path, func() (File, error) {
			f, err := site.Open(hash)
			opened = err == nil
			return f, err
		})
		if err != nil && !opened {
			return false, err
		}
		return true, err
	default:
		w.WriteHeader(http.StatusNotFound)
	}
	return true, nil
}

// location makes a redirect target safe to send: a path of the site keeps
// one leading '/' (a decoded "//host" would send the client to another
// site) and is escaped; a URL with a scheme is left as written.
func location(to string) string {
	if !strings.HasPrefix(to, "/") {
		return to
	}
	p, q, hasQuery := strings.Cut(to, "?")
	p = (&url.URL{Path: "/" + strings.TrimLeft(p, "/")}).EscapedPath()
	if hasQuery {
		return p + "?" + q
	}
	return p
}
