package cfapi

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/octohq/octo/internal/store"
)

// Workers Static Assets upload (wrangler deploy with assets): a session
// with the manifest, then buckets of files authenticated with the session's
// token, then the completion token in the script's metadata.assets.jwt.

// AssetsUploadPath is the bulk upload, under the account: it authenticates
// with the session's token, not the API token.
const AssetsUploadPath = "/workers/assets/upload"

// maxAssetsRequest bounds one bucket upload: the store's buckets hold at
// most 16 MiB of files, which base64 grows by a third.
const maxAssetsRequest = 32 << 20

// maxManifestBody bounds the session's manifest (20,000 entries).
const maxManifestBody = 8 << 20

func (s *Server) registerAssets(e *echo.Echo, a *echo.Group) {
	a.POST("/workers/scripts/:script/assets-upload-session", s.assetsSession, s.validScript)
	e.POST(BasePath+"/accounts/:account_id"+AssetsUploadPath, s.uploadAssets, s.resolveAccount)
}

// assetsSession opens an upload: {manifest} → {jwt, buckets}.
func (s *Server) assetsSession(c echo.Context) error {
	b, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, maxManifestBody))
	if err != nil {
		return Errorf(http.StatusRequestEntityTooLarge, store.CodeAssets, "the assets manifest is larger than %d MiB", maxManifestBody>>20)
	}
	var body struct {
		Manifest store.AssetManifest `json:"manifest"`
	}
	if err := json.Unmarshal(b, &body); err != nil {
		return Errorf(http.StatusBadRequest, store.CodeBadRequest, "the body must be {\"manifest\": {\"/path\": {\"hash\": ..., \"size\": ...}}}: %v", err)
	}
	sess, err := s.store.OpenAssetSession(c.Request().Context(), account(c), c.Param("script"), body.Manifest)
	if err != nil {
		return err
	}
	return ok(c, sess)
}

// uploadAssets stores one bucket of files: multipart, one part per file
// named by its hash, the content base64 with ?base64=true (wrangler's
// default), the part's Content-Type the file's media type
// ("application/null": none). It answers 201 with the completion token
// once every file of the manifest is stored, 202 before.
func (s *Server) uploadAssets(c echo.Context) error {
	r := c.Request()
	token, found := strings.CutPrefix(r.Header.Get(echo.HeaderAuthorization), "Bearer ")
	if !found || strings.TrimSpace(token) == "" {
		return Errorf(http.StatusUnauthorized, store.CodeAuthentication, "Authentication error: the assets upload needs the session's token as Authorization: Bearer <jwt>")
	}
	if err := s.store.CheckAssetUploadToken(account(c), strings.TrimSpace(token)); err != nil {
		return err // before the body is read
	}
	b64 := r.URL.Query().Get("base64") == "true"
	mr, complete, err := multipartReader(r, maxAssetsRequest)
	if err != nil {
		return err
	}
	files := map[string]store.AssetFile{}
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			if !complete() {
				return Errorf(http.StatusBadRequest, store.CodeBadRequest, "malformed multipart body: it ends before the closing boundary")
			}
			break
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return Errorf(http.StatusRequestEntityTooLarge, store.CodeAssets, "one upload request holds at most %d MiB", maxAssetsRequest>>20)
			}
			return Errorf(http.StatusBadRequest, store.CodeBadRequest, "malformed multipart body: %v", err)
		}
		data, err := io.ReadAll(p)
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return Errorf(http.StatusRequestEntityTooLarge, store.CodeAssets, "one upload request holds at most %d MiB", maxAssetsRequest>>20)
			}
			return Errorf(http.StatusBadRequest, store.CodeBadRequest, "malformed multipart body: %v", err)
		}
		if b64 {
			if data, err = base64.StdEncoding.DecodeString(strings.TrimSpace(string(data))); err != nil {
				return Errorf(http.StatusBadRequest, store.CodeAssets, "file %.40q is not base64 (?base64=true): %v", p.FormName(), err)
			}
		}
		ct := p.Header.Get("Content-Type")
		if _, _, err := mime.ParseMediaType(ct); err != nil || len(ct) > store.MaxContentType {
			ct = "" // served with a type guessed from the path
		}
		files[p.FormName()] = store.AssetFile{Data: data, ContentType: ct}
	}
	done, err := s.store.UploadAssets(r.Context(), account(c), strings.TrimSpace(token), files)
	if err != nil {
		return err
	}
	if done == "" {
		return c.JSON(http.StatusAccepted, Envelope{Success: true, Errors: []Message{}, Messages: []Message{}, Result: map[string]any{}})
	}
	return c.JSON(http.StatusCreated, Envelope{Success: true, Errors: []Message{}, Messages: []Message{}, Result: map[string]string{"jwt": done}})
}
