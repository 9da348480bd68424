package cfapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"

	"github.com/octohq/octo/internal/store"
)

// maxRequestSize bounds what is read of an upload request at all.
const maxRequestSize = store.MaxScriptSize + 1<<20

// badUpload is a 400 with the script-validation code wrangler prints.
func badUpload(format string, args ...any) *APIError {
	return Errorf(http.StatusBadRequest, store.CodeScriptValidation, format, args...)
}

// ParseUpload reads a multipart script upload (PUT script, POST versions)
// and validates it fully. Nothing is stored.
func ParseUpload(r *http.Request) (*store.Upload, error) {
	mr, complete, err := multipartReader(r, maxRequestSize)
	if err != nil {
		return nil, err
	}
	u := &store.Upload{}
	var meta []byte
	seen := map[string]bool{}
	total := 0
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			if !complete() {
				return nil, Errorf(http.StatusBadRequest, store.CodeBadRequest,
					"malformed multipart body: it ends before the closing boundary (truncated upload, or a boundary other than the Content-Type's)")
			}
			break
		}
		if err != nil {
			return nil, Errorf(http.StatusBadRequest, store.CodeBadRequest, "malformed multipart body: %v", err)
		}
		name := p.FormName()
		if name != "metadata" && len(u.Parts) >= store.MaxModules {
			// Refused before reading on: every part costs a map entry and
			// a Part, whatever its size.
			return nil, badUpload("too many modules (more than %d)", store.MaxModules)
		}
		limit := store.MaxScriptSize + 1 - int64(total)
		if name == "metadata" {
			limit = min(limit, store.MaxMetadataSize+1)
		}
		data, err := io.ReadAll(io.LimitReader(p, limit))
		if err != nil {
			return nil, Errorf(http.StatusBadRequest, store.CodeBadRequest, "malformed multipart body: %v", err)
		}
		if name == "metadata" && len(data) > store.MaxMetadataSize {
			return nil, Errorf(http.StatusRequestEntityTooLarge, store.CodeTooLarge,
				"the \"metadata\" part is larger than octo's limit of %d KiB", store.MaxMetadataSize>>10)
		}
		total += len(data)
		if total > store.MaxScriptSize {
			return nil, Errorf(http.StatusRequestEntityTooLarge, store.CodeTooLarge,
				"script upload is larger than octo's limit of %d MiB (Cloudflare allows 10 MB compressed on paid plans)", store.MaxScriptSize>>20)
		}
		if name == "metadata" {
			if meta != nil {
				return nil, badUpload("the upload has two \"metadata\" parts")
			}
			meta = data
			continue
		}
		if err := store.ValidModuleName(name); err != nil {
			return nil, err
		}
		if seen[name] {
			return nil, badUpload("module %q is uploaded twice", name)
		}
		seen[name] = true
		ct := p.Header.Get("Content-Type")
		mt, _, _ := mime.ParseMediaType(ct)
		typ, ok := store.ModuleTypes[mt]
		if !ok || len(ct) > store.MaxContentType {
			return nil, badUpload("module %q has unsupported content type %q", name, ct)
		}
		u.Parts = append(u.Parts, store.Part{Name: name, ContentType: ct, Type: typ, Data: data})
	}
	if meta == nil {
		return nil, badUpload("the upload has no \"metadata\" part")
	}
	if err := decodeStrict(meta, &u.Metadata); err != nil {
		return nil, badUpload("metadata is not valid JSON: %v", err)
	}
	if err := u.Validate(); err != nil {
		return nil, err
	}
	return u, nil
}

// multipartReader checks the content type and bounds the body to limit
// bytes. complete
// tells, once NextPart has answered io.EOF, whether the body really ended
// with the closing boundary: mime/multipart also answers io.EOF (or an error
// wrapping it) for a body cut short after any line, which would otherwise
// pass as an upload without its remaining parts.
func multipartReader(r *http.Request, limit int64) (mr *multipart.Reader, complete func() bool, err error) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !strings.HasPrefix(mt, "multipart/") || params["boundary"] == "" {
		return nil, nil, Errorf(http.StatusBadRequest, store.CodeBadRequest,
			"expected a multipart/form-data body with a boundary, got Content-Type %q", r.Header.Get("Content-Type"))
	}
	tr := &tailReader{r: http.MaxBytesReader(nil, r.Body, limit)}
	closing := []byte("--" + params["boundary"] + "--")
	complete = func() bool {
		i := bytes.LastIndex(tr.tail, closing)
		return i == 0 && tr.total == int64(len(tr.tail)) || i > 0 && tr.tail[i-1] == '\n'
	}
	return multipart.NewReader(tr, params["boundary"]), complete, nil
}

// tailReader remembers the last bytes read: enough to hold the closing
// boundary line plus what mime/multipart's 4 KiB buffer reads past it.
type tailReader struct {
	r     io.Reader
	tail  []byte
	total int64
}

const tailSize = 8 << 10

func (t *tailReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.total += int64(n)
	b := p[:n]
	if len(b) >= tailSize {
		t.tail = append(t.tail[:0], b[len(b)-tailSize:]...)
		return n, err
	}
	if keep := tailSize - len(b); len(t.tail) > keep {
		t.tail = t.tail[:copy(t.tail, t.tail[len(t.tail)-keep:])]
	}
	t.tail = append(t.tail, b...)
	return n, err
}

// decodeStrict decodes JSON, allowing unknown fields (wrangler sends many).
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}
