package podapi

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/workerd"
)

// The headers of workerd's R2 protocol.
const (
	r2RequestHeader      = "cf-r2-request"
	r2MetadataSizeHeader = "cf-r2-metadata-size"
	r2ErrorHeader        = "cf-r2-error"
	// r2MaxMetadata bounds the JSON prefix of a request (workerd caps its
	// own at 1 MiB).
	r2MaxMetadata = 1 << 20
)

// R2Protocol serves the protocol workerd speaks to the service behind an
// r2Bucket binding (workerd's R2Bucket, r2-rpc.c++), backed by the R2 store:
//
//	GET  /  cf-r2-request: {"version":1,"method":"head"|"get"|"list",…}
//	PUT  /  cf-r2-metadata-size: N; body = N bytes of JSON
//	        {"version":1,"method":"put"|"delete"|"createMultipartUpload"|"uploadPart"|
//	        "completeMultipartUpload"|"abortMultipartUpload",…}, then the value
//
// An answer to a GET is cf-r2-metadata-size: N and N bytes of JSON (an
// object's metadata, or a listing), followed by the object's bytes for a
// get; an answer to a PUT is the JSON alone. Refusals carry cf-r2-error:
// {"version":1,"v4code":…,"message":…} with R2's status: 404 with 10007
// (NoSuchKey) makes head and get return null and delete succeed; 412 with
// 10031 makes put return null and get return the object without a body
// (its metadata follows, as for a success). 64-bit numbers of the request
// may come as JSON strings (Cap'n Proto's JSON codec writes them so).
//
// The account and bucket come from the x-octo-r2 header
// (<account id>/<bucket name>).
func R2Protocol(r2 *store.R2, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &r2Protocol{st: r2, log: log}
}

// r2Protocol is the handler R2Protocol returns.
type r2Protocol struct {
	st  *store.R2
	log *slog.Logger
}

// r2Uint is a Cap'n Proto JSON integer: a number or a decimal string.
type r2Uint uint64

func (u *r2Uint) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f < 0 {
			return fmt.Errorf("not an unsigned integer: %s", b)
		}
		n = uint64(f)
	}
	*u = r2Uint(n)
	return nil
}

// r2Unset is Cap'n Proto's default of the optional 64-bit fields.
const r2Unset = r2Uint(1<<64 - 1)

// ptr returns the value as an int64, nil when unset.
func (u *r2Uint) ptr() *int64 {
	if u == nil || *u == r2Unset {
		return nil
	}
	v := int64(*u)
	return &v
}

// r2Time is a time in milliseconds since the epoch; nil when unset.
func (u *r2Uint) time() *time.Time {
	p := u.ptr()
	if p == nil {
		return nil
	}
	t := time.UnixMilli(*p).UTC()
	return &t
}

type r2Record struct {
	K string `json:"k"`
	V string `json:"v"`
}

type r2HTTPFields struct {
	ContentType        string  `json:"contentType,omitempty"`
	ContentLanguage    string  `json:"contentLanguage,omitempty"`
	ContentDisposition string  `json:"contentDisposition,omitempty"`
	ContentEncoding    string  `json:"contentEncoding,omitempty"`
	CacheControl       string  `json:"cacheControl,omitempty"`
	CacheExpiry        *r2Uint `json:"cacheExpiry,omitempty"`
}

type r2ETag struct {
	Value string `json:"value"`
	Type  string `json:"type"`
}

type r2Conditional struct {
	ETagMatches        []r2ETag `json:"etagMatches"`
	ETagDoesNotMatch   []r2ETag `json:"etagDoesNotMatch"`
	UploadedBefore     *r2Uint  `json:"uploadedBefore"`
	UploadedAfter      *r2Uint  `json:"uploadedAfter"`
	SecondsGranularity bool     `json:"secondsGranularity"`
}

// r2Request is every field of workerd's R2BindingRequest the protocol reads.
type r2Request struct {
	Version int    `json:"version"`
	Method  string `json:"method"`
	Object  string `json:"object"`
	// delete
	Objects []string `json:"objects"`
	// get
	Range *struct {
		Offset *r2Uint `json:"offset"`
		Length *r2Uint `json:"length"`
		Suffix *r2Uint `json:"suffix"`
	} `json:"range"`
	RangeHeader string         `json:"rangeHeader"`
	OnlyIf      *r2Conditional `json:"onlyIf"`
	// put, createMultipartUpload
	CustomFields []r2Record    `json:"customFields"`
	HTTPFields   *r2HTTPFields `json:"httpFields"`
	MD5          string        `json:"md5"` // base64
	SHA1         string        `json:"sha1"`
	SHA256       string        `json:"sha256"`
	SHA384       string        `json:"sha384"`
	SHA512       string        `json:"sha512"`
	// list
	Limit      *r2Uint `json:"limit"`
	Prefix     string  `json:"prefix"`
	Cursor     string  `json:"cursor"`
	Delimiter  string  `json:"delimiter"`
	StartAfter string  `json:"startAfter"`
	Include    []int   `json:"include"`
	NewRuntime bool    `json:"newRuntime"`
	// multipart
	UploadID   string `json:"uploadId"`
	PartNumber int    `json:"partNumber"`
	Parts      []struct {
		ETag string `json:"etag"`
		Part int    `json:"part"`
	} `json:"parts"`
}

// r2Object is workerd's R2HeadResponse.
type r2Object struct {
	Name         string            `json:"name"`
	Version      string            `json:"version"`
	Size         int64             `json:"size"`
	ETag         string            `json:"etag"`
	Uploaded     int64             `json:"uploaded"`
	HTTPFields   *r2HTTPFields     `json:"httpFields,omitempty"`
	CustomFields []r2Record        `json:"customFields,omitempty"`
	Range        *r2Range          `json:"range,omitempty"`
	Checksums    map[string]string `json:"checksums"`
	StorageClass string            `json:"storageClass"`
}

type r2Range struct {
	Offset int64 `json:"offset"`
	Length int64 `json:"length"`
}

type r2ListResult struct {
	Objects           []r2Object `json:"objects"`
	Truncated         bool       `json:"truncated"`
	Cursor            string     `json:"cursor,omitempty"`
	DelimitedPrefixes []string   `json:"delimitedPrefixes"`
}

// r2ChecksumField names the checksum algorithms as R2Checksums does.
var r2ChecksumField = map[string]string{"md5": "0", "sha1": "1", "sha256": "2", "sha384": "3", "sha512": "4"}

// encodeR2Object renders an object; withRange adds the range a get read.
func encodeR2Object(o store.R2Object, withRange bool) r2Object {
	out := r2Object{
		Name: o.Key, Version: o.Version, Size: o.Size, ETag: o.ETag, Uploaded: o.Uploaded.UnixMilli(),
		Checksums: map[string]string{}, StorageClass: "Standard",
	}
	for alg, v := range o.Checksums {
		if f, ok := r2ChecksumField[alg]; ok {
			out.Checksums[f] = v
		}
	}
	if h := o.HTTP; h != nil {
		out.HTTPFields = &r2HTTPFields{ContentType: h.ContentType, ContentLanguage: h.ContentLanguage,
			ContentDisposition: h.ContentDisposition, ContentEncoding: h.ContentEncoding, CacheControl: h.CacheControl}
		if !h.CacheExpiry.IsZero() {
			ms := r2Uint(h.CacheExpiry.UnixMilli())
			out.HTTPFields.CacheExpiry = &ms
		}
	}
	if o.Custom != nil {
		out.CustomFields = []r2Record{}
		for k, v := range o.Custom {
			out.CustomFields = append(out.CustomFields, r2Record{K: k, V: v})
		}
	}
	if withRange {
		out.Range = &r2Range{Offset: o.RangeOffset, Length: o.RangeLength}
	}
	return out
}

func (h *r2Protocol) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := strings.TrimSpace(r.Header.Get(workerd.R2Header))
	acct, bucket, found := strings.Cut(hdr, "/")
	if !found || acct == "" || bucket == "" {
		h.fail(w, r, "", store.Errorf(store.Invalid, store.CodeR2InvalidArgument,
			"missing or malformed %s header %q: want <account id>/<bucket name>", workerd.R2Header, hdr))
		return
	}
	var req r2Request
	var err error
	switch r.Method {
	case http.MethodGet:
		err = h.decode([]byte(r.Header.Get(r2RequestHeader)), &req)
		if err == nil {
			err = h.serveGet(w, r, acct, bucket, &req)
		}
	case http.MethodPut:
		var size int64
		if size, err = h.readPrefix(r, &req); err == nil {
			err = h.servePut(w, r, acct, bucket, &req, size)
		}
	default:
		w.Header().Set("Allow", "GET, PUT")
		err = store.Errorf(store.Invalid, store.CodeR2InvalidArgument, "method %s is not part of the R2 protocol", r.Method)
	}
	if err != nil {
		h.fail(w, r, req.Method, err)
	}
}

func (h *r2Protocol) decode(b []byte, req *r2Request) error {
	if len(b) == 0 {
		return store.Errorf(store.Invalid, store.CodeR2InvalidArgument, "Metadata missing or invalid")
	}
	if err := json.Unmarshal(b, req); err != nil {
		return store.Errorf(store.Invalid, store.CodeR2InvalidArgument, "Metadata missing or invalid: %v", err)
	}
	return nil
}

// readPrefix reads the JSON prefix of a PUT and returns the size of the
// value after it (-1 when the request has no length).
func (h *r2Protocol) readPrefix(r *http.Request, req *r2Request) (int64, error) {
	n, err := strconv.ParseInt(r.Header.Get(r2MetadataSizeHeader), 10, 64)
	if err != nil || n < 0 || n > r2MaxMetadata {
		return 0, store.Errorf(store.Invalid, store.CodeR2InvalidArgument, "Metadata missing or invalid: bad %s", r2MetadataSizeHeader)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r.Body, buf); err != nil {
		return 0, store.Errorf(store.Invalid, store.CodeR2InvalidArgument, "Metadata missing or invalid: %v", err)
	}
	if err := h.decode(buf, req); err != nil {
		return 0, err
	}
	if r.ContentLength < 0 {
		return -1, nil
	}
	if r.ContentLength < n {
		return 0, store.Errorf(store.Invalid, store.CodeR2InvalidArgument, "Content-Length is shorter than the metadata")
	}
	return r.ContentLength - n, nil
}

func (h *r2Protocol) serveGet(w http.ResponseWriter, r *http.Request, acct, bucket string, req *r2Request) error {
	ctx := r.Context()
	switch req.Method {
	case "head":
		o, err := h.st.Head(ctx, acct, bucket, req.Object)
		if err != nil {
			return err
		}
		o.RangeOffset, o.RangeLength = 0, o.Size
		return writeR2(w, http.StatusOK, encodeR2Object(o, true), nil, 0)
	case "get":
		opts := store.R2GetOptions{RangeHeader: req.RangeHeader, OnlyIf: req.OnlyIf.conditional()}
		if rg := req.Range; rg != nil {
			opts.Range = &store.R2Range{Offset: rg.Offset.ptr(), Length: rg.Length.ptr(), Suffix: rg.Suffix.ptr()}
			if opts.Range.Offset == nil && opts.Range.Length == nil && opts.Range.Suffix == nil {
				opts.Range = nil
			}
		}
		o, body, err := h.st.Get(ctx, acct, bucket, req.Object, opts)
		if e := store.AsError(err); e != nil && e.Code == store.CodeR2Precondition {
			// The object's metadata follows the error, without a body.
			w.Header().Set(r2ErrorHeader, r2ErrorJSON(e.Code, e.Msg))
			return writeR2(w, http.StatusPreconditionFailed, encodeR2Object(o, false), nil, 0)
		}
		if err != nil {
			return err
		}
		defer body.Close()
		return writeR2(w, http.StatusOK, encodeR2Object(o, true), body, o.RangeLength)
	case "list":
		opts := store.R2ListOptions{Prefix: req.Prefix, Delimiter: req.Delimiter, Cursor: req.Cursor, StartAfter: req.StartAfter}
		if l := req.Limit.ptr(); l != nil {
			opts.Limit = int(min(*l, int64(store.R2MaxListLimit+1)))
			if opts.Limit == 0 {
				opts.Limit = -1 // an explicit 0 is refused, as R2 does
			}
		}
		if req.Include == nil && !req.NewRuntime {
			opts.IncludeHTTP, opts.IncludeCustom = true, true // an old runtime: everything
		}
		for _, f := range req.Include {
			opts.IncludeHTTP = opts.IncludeHTTP || f == 0
			opts.IncludeCustom = opts.IncludeCustom || f == 1
		}
		l, err := h.st.List(ctx, acct, bucket, opts)
		if err != nil {
			return err
		}
		res := r2ListResult{Objects: make([]r2Object, len(l.Objects)), Truncated: l.Truncated, Cursor: l.Cursor, DelimitedPrefixes: l.DelimitedPrefixes}
		for i, o := range l.Objects {
			res.Objects[i] = encodeR2Object(o, false)
		}
		return writeR2(w, http.StatusOK, res, nil, 0)
	}
	return store.Errorf(store.Invalid, store.CodeR2InvalidArgument, "unknown R2 method %q for GET", req.Method)
}

func (h *r2Protocol) servePut(w http.ResponseWriter, r *http.Request, acct, bucket string, req *r2Request, size int64) error {
	ctx := r.Context()
	switch req.Method {
	case "put":
		opts, err := req.putOptions()
		if err != nil {
			return err
		}
		o, err := h.st.Put(ctx, acct, bucket, req.Object, r.Body, size, opts)
		if err != nil {
			return err
		}
		return writeR2(w, http.StatusOK, encodeR2Object(o, false), nil, 0)
	case "delete":
		keys := req.Objects
		if keys == nil {
			keys = []string{req.Object}
		}
		if err := h.st.Delete(ctx, acct, bucket, keys...); err != nil {
			return err
		}
		return writeR2(w, http.StatusOK, struct{}{}, nil, 0)
	case "createMultipartUpload":
		opts, err := req.putOptions()
		if err != nil {
			return err
		}
		id, err := h.st.CreateMultipartUpload(ctx, acct, bucket, req.Object, opts)
		if err != nil {
			return err
		}
		return writeR2(w, http.StatusOK, map[string]string{"uploadId": id}, nil, 0)
	case "uploadPart":
		etag, err := h.st.UploadPart(ctx, acct, bucket, req.Object, req.UploadID, req.PartNumber, r.Body, size)
		if err != nil {
			return err
		}
		return writeR2(w, http.StatusOK, map[string]string{"etag": etag}, nil, 0)
	case "completeMultipartUpload":
		parts := make([]store.R2Part, len(req.Parts))
		for i, p := range req.Parts {
			parts[i] = store.R2Part{Number: p.Part, ETag: p.ETag}
		}
		o, err := h.st.CompleteMultipartUpload(ctx, acct, bucket, req.Object, req.UploadID, parts)
		if err != nil {
			return err
		}
		return writeR2(w, http.StatusOK, encodeR2Object(o, false), nil, 0)
	case "abortMultipartUpload":
		if err := h.st.AbortMultipartUpload(ctx, acct, bucket, req.Object, req.UploadID); err != nil {
			return err
		}
		return writeR2(w, http.StatusOK, struct{}{}, nil, 0)
	}
	return store.Errorf(store.Invalid, store.CodeR2InvalidArgument, "unknown R2 method %q for PUT", req.Method)
}

// conditional converts an onlyIf; nil stays nil.
func (c *r2Conditional) conditional() *store.R2Conditional {
	if c == nil {
		return nil
	}
	etags := func(in []r2ETag) []store.R2ETag {
		var out []store.R2ETag
		for _, e := range in {
			out = append(out, store.R2ETag{Value: e.Value, Weak: e.Type == "weak", Wildcard: e.Type == "wildcard"})
		}
		return out
	}
	return &store.R2Conditional{
		ETagMatches: etags(c.ETagMatches), ETagDoesNotMatch: etags(c.ETagDoesNotMatch),
		UploadedBefore: c.UploadedBefore.time(), UploadedAfter: c.UploadedAfter.time(),
		SecondsGranularity: c.SecondsGranularity,
	}
}

// putOptions converts the metadata, condition and checksums of a put.
func (req *r2Request) putOptions() (store.R2PutOptions, error) {
	opts := store.R2PutOptions{OnlyIf: req.OnlyIf.conditional(), Checksums: map[string][]byte{}}
	if f := req.HTTPFields; f != nil {
		opts.HTTP = store.R2HTTPMetadata{ContentType: f.ContentType, ContentLanguage: f.ContentLanguage,
			ContentDisposition: f.ContentDisposition, ContentEncoding: f.ContentEncoding, CacheControl: f.CacheControl}
		if t := f.CacheExpiry.time(); t != nil {
			opts.HTTP.CacheExpiry = *t
		}
	}
	if req.CustomFields != nil {
		opts.Custom = map[string]string{}
		for _, kv := range req.CustomFields {
			opts.Custom[kv.K] = kv.V
		}
	}
	if req.MD5 != "" {
		b, err := base64.StdEncoding.DecodeString(req.MD5)
		if err != nil {
			return opts, store.Errorf(store.Invalid, store.CodeR2InvalidArgument, "md5 is not base64: %v", err)
		}
		opts.Checksums["md5"] = b
	}
	for alg, v := range map[string]string{"sha1": req.SHA1, "sha256": req.SHA256, "sha384": req.SHA384, "sha512": req.SHA512} {
		if v == "" {
			continue
		}
		b, err := hex.DecodeString(v)
		if err != nil {
			return opts, store.Errorf(store.Invalid, store.CodeR2InvalidArgument, "%s is not hex: %v", alg, err)
		}
		opts.Checksums[alg] = b
	}
	return opts, nil
}

// writeR2 answers status with cf-r2-metadata-size and the JSON of meta,
// followed by n bytes of body when body is not nil.
func writeR2(w http.ResponseWriter, status int, meta any, body io.Reader, n int64) error {
	b, err := json.Marshal(meta)
	if err != nil {
		return err
	}
	w.Header().Set(r2MetadataSizeHeader, strconv.Itoa(len(b)))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.FormatInt(int64(len(b))+max(n, 0), 10))
	w.WriteHeader(status)
	if _, err := w.Write(b); err != nil || body == nil {
		return nil
	}
	_, _ = io.CopyN(w, body, n) // headers are out: a short body ends the connection
	return nil
}

// r2ErrorJSON is the cf-r2-error header of a refusal.
func r2ErrorJSON(code int, msg string) string {
	b, _ := json.Marshal(struct {
		Version int    `json:"version"`
		V4Code  int    `json:"v4code"`
		Message string `json:"message"`
	}{1, code, msg})
	return string(b)
}

// r2Status is the HTTP status of an R2 refusal, as R2 answers it.
func r2Status(code int, kind store.Kind) int {
	switch code {
	case store.CodeR2NoSuchKey, store.CodeR2NoSuchBucket:
		return http.StatusNotFound
	case store.CodeR2Precondition:
		return http.StatusPreconditionFailed
	case store.CodeR2InvalidRange:
		return http.StatusRequestedRangeNotSatisfiable
	case store.CodeR2BucketExists, store.CodeR2BucketNotEmpty:
		return http.StatusConflict
	}
	if kind == store.TooLarge {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

// fail answers err in cf-r2-error; errors that are not refusals are 500
// with R2's internal error code.
func (h *r2Protocol) fail(w http.ResponseWriter, r *http.Request, method string, err error) {
	status, code, msg := http.StatusInternalServerError, 10001, "We encountered an internal error. Please try again."
	if e := store.AsError(err); e != nil {
		status, code, msg = r2Status(e.Code, e.Kind), e.Code, e.Msg
	} else if !errors.Is(err, r.Context().Err()) || r.Context().Err() == nil {
		h.log.Error("R2 protocol", "method", method, "header", r.Header.Get(workerd.R2Header), "err", err)
	}
	w.Header().Set(r2ErrorHeader, r2ErrorJSON(code, msg))
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.Copy(w, bytes.NewReader([]byte(msg)))
}
