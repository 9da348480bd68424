package registry

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/distribution/distribution/v3/registry/auth"
	"github.com/sirupsen/logrus"
)

// dcontextPkg is the package of distribution's context logger key.
const dcontextPkg = "github.com/distribution/distribution/v3/internal/dcontext"

// logContext answers distribution's logger lookups with the registry's own
// logrus entry.
//
// distribution logs through dcontext.GetLogger, which takes the logger stored
// in the context under dcontext's unexported loggerKey and falls back to
// logrus' global standard logger. Only registry.NewRegistry can store one
// (and it also reconfigures the global logger). Serving every request and
// the App itself from this context keeps the registry's logs off the global
// logrus logger, whose level other in-process components (kine) rely on. If
// a later distribution renames the key, logs go to the global logger again;
// TestServer catches that.
type logContext struct {
	context.Context
	entry *logrus.Entry
}

// Value returns the registry's logger for dcontext's logger key and defers
// every other key to the parent context.
func (c logContext) Value(key any) any {
	if t := reflect.TypeOf(key); t != nil && t.Name() == "loggerKey" && t.PkgPath() == dcontextPkg {
		return c.entry
	}
	return c.Context.Value(key)
}

// withLogger returns a context carrying a logrus entry that forwards the
// registry's logs to logger.
func withLogger(ctx context.Context, logger *slog.Logger) context.Context {
	l := logrus.New()
	l.SetOutput(io.Discard)
	l.SetFormatter(discardFormatter{})
	l.SetLevel(logrus.InfoLevel)
	l.AddHook(slogHook{logger})
	return logContext{Context: ctx, entry: logrus.NewEntry(l)}
}

// discardFormatter skips formatting: slogHook already forwarded the entry.
type discardFormatter struct{}

// Format returns nothing.
func (discardFormatter) Format(*logrus.Entry) ([]byte, error) { return nil, nil }

// slogHook forwards logrus entries to slog.
//
// Every request ends in a "response completed" entry, at error level when the
// response is an error: a push makes many 404s (HEAD of blobs not yet
// uploaded). Those go to debug, server errors (5xx) to warn. A request
// refused for want of credentials is the first step of every client's basic
// auth handshake: debug too; wrong credentials stay a warning. Other info
// chatter goes to debug; warnings and errors keep their level.
type slogHook struct{ log *slog.Logger }

// Levels returns all levels.
func (slogHook) Levels() []logrus.Level { return logrus.AllLevels }

// Fire logs e through slog.
func (h slogHook) Fire(e *logrus.Entry) error {
	level := slog.LevelDebug
	switch {
	case strings.HasPrefix(e.Message, "response completed"):
		if status, ok := e.Data["http.response.status"].(int); ok && status >= 500 {
			level = slog.LevelWarn
		}
	case strings.HasPrefix(e.Message, "error authorizing context") && strings.HasSuffix(e.Message, auth.ErrInvalidCredential.Error()):
	case e.Level <= logrus.ErrorLevel:
		level = slog.LevelError
	case e.Level == logrus.WarnLevel:
		level = slog.LevelWarn
	}
	ctx := context.Background()
	if !h.log.Enabled(ctx, level) {
		return nil
	}
	attrs := make([]slog.Attr, 0, len(e.Data))
	for _, k := range slices.Sorted(maps.Keys(e.Data)) {
		if k == "go.version" {
			continue
		}
		v := e.Data[k]
		if err, ok := v.(error); ok {
			v = err.Error()
		}
		attrs = append(attrs, slog.Any(k, v))
	}
	h.log.LogAttrs(ctx, level, e.Message, attrs...)
	return nil
}
