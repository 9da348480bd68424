package store

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
)

// Cloudflare codes of R2 (the v4 codes the R2 binding and the API answer).
const (
	CodeR2BucketExists     = 10004 // the bucket exists, and you own it
	CodeR2InvalidBucket    = 10005 // invalid bucket name
	CodeR2NoSuchBucket     = 10006 // the bucket does not exist
	CodeR2NoSuchKey        = 10007 // the object does not exist
	CodeR2BucketNotEmpty   = 10008 // deleting a bucket that holds objects
	CodeR2EntityTooSmall   = 10011 // a multipart part under the minimum size
	CodeR2MetadataTooLarge = 10012 // custom metadata over 2 KiB
	CodeR2InvalidObject    = 10020 // invalid object name
	CodeR2InvalidMaxKeys   = 10022 // list limit outside 1..1000
	CodeR2NoSuchUpload     = 10024 // unknown multipart upload
	CodeR2InvalidPart      = 10025 // unknown part or etag at completion
	CodeR2InvalidArgument  = 10029 // malformed request
	CodeR2Precondition     = 10031 // an onlyIf condition did not hold
	CodeR2BadDigest        = 10037 // a checksum did not match the body
	CodeR2InvalidRange     = 10039 // unsatisfiable range
)

// R2 limits (Cloudflare's).
const (
	// R2MaxListLimit is the largest page of an object listing.
	R2MaxListLimit = 1000
	// r2MaxListWithMetadata is the largest page when metadata is included.
	r2MaxListWithMetadata = 100
	r2MaxKeyBytes         = 1024
	r2MaxCustomMetadata   = 2048
	// R2MaxDeleteKeys is the largest batch of one delete.
	R2MaxDeleteKeys = 1000
	r2Parallelism   = 8
)

// User metadata names octo reserves on the S3 objects of R2 buckets.
const (
	// r2MetaCustom holds the whole custom metadata (base64url JSON) when a
	// key or value cannot travel as a plain x-amz-meta-<key> header.
	r2MetaCustom = "octo-r2-custom"
	// r2MetaRecord holds the object's whole HTTP and custom metadata
	// (base64url JSON, r2MetaJSON), written with every put: the S3 store
	// keeps an object's earlier metadata across an overwrite that leaves a
	// header out (versitygw's sidecar metadata), so the headers alone could
	// show a previous upload's values. When present it is the truth.
	r2MetaRecord = "octo-r2-meta"
)

// r2MetaJSON is the content of r2MetaRecord.
type r2MetaJSON struct {
	HTTP   R2HTTPMetadata    `json:"http"`
	Expiry int64             `json:"expiry,omitempty"` // unix seconds; 0 = none
	Custom map[string]string `json:"custom,omitempty"`
}

// R2 keeps Cloudflare R2 buckets in the S3 store: one S3 bucket per
// (account, R2 bucket), named by R2S3Bucket, so accounts never see each
// other's objects; and, in octo's own bucket, a record per R2 bucket
// (r2BucketKey: name, location, creation date) from which buckets are
// listed. Objects keep their HTTP metadata in S3's standard headers
// (Content-Type, Content-Language, Content-Disposition, Content-Encoding,
// Cache-Control, Expires) and their custom metadata as S3 user metadata
// (x-amz-meta-<key>); etags are S3's (the MD5 of a simple upload). Its
// refusals are *Error with R2's v4 codes (CodeR2…).
type R2 struct {
	blobs *BlobStore
	core  minio.Core
	now   func() time.Time
	// mu serialises bucket creation and deletion.
	mu sync.Mutex
}

// NewR2 returns the R2 store on b's S3 connection; a nil now means time.Now.
func NewR2(b *BlobStore, now func() time.Time) *R2 {
	if now == nil {
		now = time.Now
	}
	r := &R2{blobs: b, now: now}
	if b != nil {
		r.core = minio.Core{Client: b.c}
	}
	return r
}

// R2Bucket is an R2 bucket as its record keeps it.
type R2Bucket struct {
	Name         string    `json:"name"`
	CreationDate time.Time `json:"creation_date"`
	Location     string    `json:"location"`
	StorageClass string    `json:"storage_class"`
}

// R2HTTPMetadata is an object's HTTP metadata; empty fields are unset.
type R2HTTPMetadata struct {
	ContentType        string `json:"contentType,omitempty"`
	ContentLanguage    string `json:"contentLanguage,omitempty"`
	ContentDisposition string `json:"contentDisposition,omitempty"`
	ContentEncoding    string `json:"contentEncoding,omitempty"`
	CacheControl       string `json:"cacheControl,omitempty"`
	// CacheExpiry is the Expires time (second precision); zero is unset.
	CacheExpiry time.Time `json:"-"`
}

// R2Object is an object's metadata.
type R2Object struct {
	Key     string
	Version string
	Size    int64
	ETag    string
	// Uploaded is the time of the upload, to the second (S3's precision).
	Uploaded time.Time
	// HTTP and Custom are nil in listings that did not include them.
	HTTP   *R2HTTPMetadata
	Custom map[string]string
	// Checksums holds the hex digests known, by algorithm (md5).
	Checksums map[string]string
	// RangeOffset and RangeLength are the bytes a Get returned.
	RangeOffset, RangeLength int64
}

// R2Conditional is an onlyIf condition; empty fields do not apply. ETag
// lists hold etag values, "*" for any.
type R2Conditional struct {
	ETagMatches      []R2ETag
	ETagDoesNotMatch []R2ETag
	UploadedBefore   *time.Time
	UploadedAfter    *time.Time
	// SecondsGranularity compares the times to the second.
	SecondsGranularity bool
}

// R2ETag is one etag of a condition: a value, weak or strong, or the
// wildcard.
type R2ETag struct {
	Value    string
	Weak     bool
	Wildcard bool
}

// R2Range selects bytes of a Get: Offset and Length, or Suffix (the last
// Suffix bytes); nil fields are unset.
type R2Range struct {
	Offset, Length, Suffix *int64
}

// R2GetOptions are the options of a Get.
type R2GetOptions struct {
	Range *R2Range
	// RangeHeader is an HTTP Range header ("bytes=0-9"), used when Range
	// is nil.
	RangeHeader string
	OnlyIf      *R2Conditional
}

// R2PutOptions are the options of a Put or of a multipart upload.
type R2PutOptions struct {
	HTTP   R2HTTPMetadata
	Custom map[string]string
	OnlyIf *R2Conditional
	// Checksums the body must have, by algorithm: md5, sha1, sha256,
	// sha384, sha512.
	Checksums map[string][]byte
}

// R2ListOptions are the options of a List.
type R2ListOptions struct {
	Prefix     string
	Delimiter  string
	Cursor     string
	StartAfter string
	// Limit is the page size, 1..1000; 0 means 1000.
	Limit int
	// IncludeHTTP and IncludeCustom fill the objects' metadata (at most
	// 100 objects a page then).
	IncludeHTTP, IncludeCustom bool
}

// R2List is one page of a listing.
type R2List struct {
	Objects           []R2Object
	DelimitedPrefixes []string
	Truncated         bool
	Cursor            string
}

// R2Part is an uploaded part of a multipart upload.
type R2Part struct {
	Number int
	ETag   string
}

var r2BucketNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`)

// ValidR2BucketName checks Cloudflare's bucket name rules: 3 to 63
// lowercase letters, digits and hyphens, starting and ending with a letter
// or digit.
func ValidR2BucketName(name string) error {
	if !r2BucketNameRe.MatchString(name) {
		return Errorf(Invalid, CodeR2InvalidBucket,
			"The specified bucket name is not valid. Bucket names must begin and end with an alphanumeric and only contain letters (a-z), numbers (0-9), and hyphens (-). They must be between 3 and 63 characters long.")
	}
	return nil
}

// R2S3Bucket is the S3 bucket that holds the R2 bucket name of account:
// "r2-<12 hex digits of the account's SHA-256>-<name>", or, when that
// would exceed S3's 63 characters, "r2h-<12 hex>-<45 hex digits of the
// name's SHA-256>". Both are valid S3 names (lowercase, digits, hyphens)
// and the two forms never meet.
func R2S3Bucket(account, name string) string {
	a := sha256.Sum256([]byte(account))
	acct := hex.EncodeToString(a[:])[:12]
	if s := "r2-" + acct + "-" + name; len(s) <= 63 {
		return s
	}
	n := sha256.Sum256([]byte(name))
	return "r2h-" + acct + "-" + hex.EncodeToString(n[:])[:45]
}

func r2NoSuchBucket() *Error {
	return Errorf(NotFound, CodeR2NoSuchBucket, "The specified bucket does not exist.")
}

func r2NoSuchKey() *Error {
	return Errorf(NotFound, CodeR2NoSuchKey, "The specified key does not exist.")
}

// R2PreconditionFailed is the refusal of a request whose onlyIf did not
// hold.
func R2PreconditionFailed() *Error {
	return Errorf(Conflict, CodeR2Precondition, "At least one of the pre-conditions you specified did not hold.")
}

func r2InvalidRange() *Error {
	return Errorf(Invalid, CodeR2InvalidRange, "The requested range is not satisfiable")
}

// r2Err turns S3's answers into R2's refusals; other errors are wrapped.
func r2Err(op string, err error) error {
	if err == nil {
		return nil
	}
	if AsError(err) != nil {
		return err
	}
	switch minio.ToErrorResponse(err).Code {
	case "NoSuchBucket":
		return r2NoSuchBucket()
	case "NoSuchKey":
		return r2NoSuchKey()
	case "NoSuchUpload":
		return Errorf(Invalid, CodeR2NoSuchUpload, "The specified multipart upload does not exist.")
	case "InvalidPart", "InvalidPartOrder":
		return Errorf(Invalid, CodeR2InvalidPart, "One or more of the specified parts could not be found.")
	case "EntityTooSmall":
		return Errorf(Invalid, CodeR2EntityTooSmall, "Your proposed upload is smaller than the minimum allowed object size.")
	case "BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch":
		return Errorf(Invalid, CodeR2BadDigest, "The checksum you specified did not match what we received.")
	case "InvalidRange":
		return r2InvalidRange()
	case "PreconditionFailed":
		return R2PreconditionFailed()
	}
	return fmt.Errorf("r2 %s: %w", op, err)
}

func validR2Key(key string) error {
	if key == "" || len(key) > r2MaxKeyBytes {
		return Errorf(Invalid, CodeR2InvalidObject, "The specified object name is not valid.")
	}
	return nil
}

// --- buckets ---

// CreateBucket makes an R2 bucket of account; a bucket that exists is
// 10004.
func (r *R2) CreateBucket(ctx context.Context, account, name, location string) (R2Bucket, error) {
	if err := ValidR2BucketName(name); err != nil {
		return R2Bucket{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.Bucket(ctx, account, name); err == nil {
		return R2Bucket{}, Errorf(Conflict, CodeR2BucketExists, "The bucket you tried to create already exists, and you own it.")
	} else if !IsNotFound(err, CodeR2NoSuchBucket) {
		return R2Bucket{}, err
	}
	s3 := R2S3Bucket(account, name)
	if err := r.blobs.c.MakeBucket(ctx, s3, minio.MakeBucketOptions{}); err != nil {
		// A bucket without its record is one whose creation was cut
		// short: adopt it.
		if c := minio.ToErrorResponse(err).Code; c != "BucketAlreadyOwnedByYou" && c != "BucketAlreadyExists" {
			return R2Bucket{}, fmt.Errorf("r2 create bucket %s: %w", name, err)
		}
	}
	if location == "" {
		location = "WNAM"
	}
	b := R2Bucket{Name: name, CreationDate: r.now().UTC().Truncate(time.Millisecond), Location: strings.ToUpper(location), StorageClass: "Standard"}
	data, err := json.Marshal(b)
	if err != nil {
		return R2Bucket{}, err
	}
	if err := r.blobs.Put(ctx, r2BucketKey(account, name), data, "application/json", nil); err != nil {
		_ = r.blobs.c.RemoveBucket(ctx, s3)
		return R2Bucket{}, err
	}
	return b, nil
}

// Bucket returns one bucket of account; unknown names are 10006.
func (r *R2) Bucket(ctx context.Context, account, name string) (R2Bucket, error) {
	if ValidR2BucketName(name) != nil {
		return R2Bucket{}, r2NoSuchBucket()
	}
	data, _, err := r.blobs.Get(ctx, r2BucketKey(account, name))
	if errors.Is(err, ErrBlobNotFound) {
		return R2Bucket{}, r2NoSuchBucket()
	}
	if err != nil {
		return R2Bucket{}, err
	}
	var b R2Bucket
	if err := json.Unmarshal(data, &b); err != nil {
		return R2Bucket{}, fmt.Errorf("r2 bucket %s: %w", name, err)
	}
	return b, nil
}

// Buckets returns the buckets of account, by name.
func (r *R2) Buckets(ctx context.Context, account string) ([]R2Bucket, error) {
	keys, err := r.blobs.List(ctx, r2BucketsPrefix(account), "", 0)
	if err != nil {
		return nil, err
	}
	found := make([]*R2Bucket, len(keys))
	errs := make([]error, len(keys))
	kvParallel(len(keys), func(i int) {
		name := strings.TrimSuffix(strings.TrimPrefix(keys[i], r2BucketsPrefix(account)), ".json")
		b, err := r.Bucket(ctx, account, name)
		switch {
		case IsNotFound(err, CodeR2NoSuchBucket):
		case err != nil:
			errs[i] = err
		default:
			found[i] = &b
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out := []R2Bucket{}
	for _, b := range found {
		if b != nil {
			out = append(out, *b)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// DeleteBucket removes an empty bucket: 10006 when it does not exist, 10008
// when it holds objects. Multipart uploads in progress are aborted.
func (r *R2) DeleteBucket(ctx context.Context, account, name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.Bucket(ctx, account, name); err != nil {
		return err
	}
	s3 := R2S3Bucket(account, name)
	page, err := r.core.ListObjectsV2(s3, "", "", "", "", 1)
	if err != nil && minio.ToErrorResponse(err).Code != "NoSuchBucket" {
		return r2Err("delete bucket", err)
	}
	if len(page.Contents) > 0 {
		return Errorf(Conflict, CodeR2BucketNotEmpty, "The bucket you tried to delete is not empty.")
	}
	if err == nil {
		for up := range r.blobs.c.ListIncompleteUploads(ctx, s3, "", true) {
			if up.Err == nil {
				_ = r.core.AbortMultipartUpload(ctx, s3, up.Key, up.UploadID)
			}
		}
		if err := r.blobs.c.RemoveBucket(ctx, s3); err != nil {
			switch minio.ToErrorResponse(err).Code {
			case "NoSuchBucket":
			case "BucketNotEmpty":
				return Errorf(Conflict, CodeR2BucketNotEmpty, "The bucket you tried to delete is not empty.")
			default:
				return fmt.Errorf("r2 delete bucket %s: %w", name, err)
			}
		}
	}
	return r.blobs.Delete(ctx, r2BucketKey(account, name))
}

// Usage returns the number of objects in a bucket and their total size.
func (r *R2) Usage(ctx context.Context, account, name string) (objects, bytes int64, err error) {
	if _, err := r.Bucket(ctx, account, name); err != nil {
		return 0, 0, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for o := range r.blobs.c.ListObjects(ctx, R2S3Bucket(account, name), minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			return 0, 0, r2Err("usage", o.Err)
		}
		objects++
		bytes += o.Size
	}
	return objects, bytes, nil
}

// --- objects ---

// r2CustomSafe reports whether custom metadata can travel as plain S3 user
// metadata: keys that S3's case-folding leaves intact, printable ASCII
// values without surrounding spaces.
func r2CustomSafe(custom map[string]string) bool {
	for k, v := range custom {
		if k == "" || k == r2MetaCustom || strings.TrimSpace(v) != v {
			return false
		}
		for _, c := range k {
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
				return false
			}
		}
		for _, c := range v {
			if c < 0x20 || c > 0x7e {
				return false
			}
		}
	}
	return true
}

// r2UserMetadata is the S3 user metadata that keeps custom.
func r2UserMetadata(o R2PutOptions) map[string]string {
	rec := r2MetaJSON{HTTP: o.HTTP, Custom: o.Custom}
	if !o.HTTP.CacheExpiry.IsZero() {
		rec.Expiry = o.HTTP.CacheExpiry.Unix()
	}
	b, _ := json.Marshal(rec)
	return map[string]string{r2MetaRecord: base64.RawURLEncoding.EncodeToString(b)}
}

// r2MetaFrom reads r2MetaRecord from S3 user metadata, if there.
func r2MetaFrom(meta map[string]string) (*R2HTTPMetadata, map[string]string, bool) {
	for k, v := range meta {
		if !strings.EqualFold(k, r2MetaRecord) {
			continue
		}
		b, err := base64.RawURLEncoding.DecodeString(v)
		var rec r2MetaJSON
		if err != nil || json.Unmarshal(b, &rec) != nil {
			return nil, nil, false
		}
		h := rec.HTTP
		if rec.Expiry != 0 {
			h.CacheExpiry = time.Unix(rec.Expiry, 0).UTC()
		}
		if rec.Custom == nil {
			rec.Custom = map[string]string{}
		}
		return &h, rec.Custom, true
	}
	return nil, nil, false
}

// r2Custom reads custom metadata back from S3 user metadata (whose names
// S3 returns canonicalised: "Foo-Bar").
func r2Custom(meta map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range meta {
		if strings.EqualFold(k, r2MetaCustom) {
			if b, err := base64.RawURLEncoding.DecodeString(v); err == nil {
				enc := map[string]string{}
				if json.Unmarshal(b, &enc) == nil {
					return enc
				}
			}
			continue
		}
		out[strings.ToLower(k)] = v
	}
	return out
}

func r2CheckCustom(custom map[string]string) error {
	n := 0
	for k, v := range custom {
		n += len(k) + len(v)
	}
	if n > r2MaxCustomMetadata {
		return Errorf(Invalid, CodeR2MetadataTooLarge, "Your metadata headers exceed the maximum allowed metadata size.")
	}
	return nil
}

func r2PutOptions(o R2PutOptions) minio.PutObjectOptions {
	return minio.PutObjectOptions{
		ContentType: o.HTTP.ContentType, ContentLanguage: o.HTTP.ContentLanguage,
		ContentDisposition: o.HTTP.ContentDisposition, ContentEncoding: o.HTTP.ContentEncoding,
		CacheControl: o.HTTP.CacheControl, Expires: o.HTTP.CacheExpiry,
		UserMetadata: r2UserMetadata(o),
	}
}

// r2Version is an object's version ID: stable for one upload (its etag and
// time), new with the next.
func r2Version(etag string, t time.Time) string {
	s := sha256.Sum256([]byte(etag + "@" + strconv.FormatInt(t.UnixNano(), 10)))
	return hex.EncodeToString(s[:16])
}

// r2Object converts S3's object info; withMeta fills HTTP and Custom.
func r2Object(info minio.ObjectInfo, withMeta bool) R2Object {
	etag := strings.Trim(info.ETag, `"`)
	up := info.LastModified.UTC().Truncate(time.Second)
	o := R2Object{Key: info.Key, Size: info.Size, ETag: etag, Uploaded: up, Version: r2Version(etag, up), Checksums: map[string]string{}}
	if len(etag) == 32 {
		if _, err := hex.DecodeString(etag); err == nil {
			o.Checksums["md5"] = etag
		}
	}
	if withMeta {
		h := &R2HTTPMetadata{
			ContentType:        info.ContentType,
			ContentLanguage:    info.Metadata.Get("Content-Language"),
			ContentDisposition: info.Metadata.Get("Content-Disposition"),
			ContentEncoding:    info.Metadata.Get("Content-Encoding"),
			CacheControl:       info.Metadata.Get("Cache-Control"),
		}
		if !info.Expires.IsZero() && info.Expires.Unix() > 0 {
			h.CacheExpiry = info.Expires.UTC()
		}
		o.HTTP = h
		o.Custom = r2Custom(info.UserMetadata)
		if rh, rc, ok := r2MetaFrom(info.UserMetadata); ok {
			o.HTTP, o.Custom = rh, rc
		}
	}
	return o
}

// r2Holds reports whether cond holds for an object (nil when missing), as
// R2 evaluates it.
func r2Holds(cond *R2Conditional, o *R2Object) bool {
	if cond == nil {
		return true
	}
	if o == nil {
		return len(cond.ETagMatches) == 0 && cond.UploadedAfter == nil
	}
	includes := func(list []R2ETag, weakOK bool) bool {
		for _, e := range list {
			if e.Wildcard || (e.Value == o.ETag && (!e.Weak || weakOK)) {
				return true
			}
		}
		return false
	}
	trunc := func(t time.Time) time.Time {
		if cond.SecondsGranularity {
			return t.Truncate(time.Second)
		}
		return t
	}
	ifMatch := len(cond.ETagMatches) == 0 || includes(cond.ETagMatches, false)
	ifNoneMatch := len(cond.ETagDoesNotMatch) == 0 || !includes(cond.ETagDoesNotMatch, true)
	up := trunc(o.Uploaded)
	modifiedSince := cond.UploadedAfter == nil || trunc(*cond.UploadedAfter).Before(up) ||
		(len(cond.ETagDoesNotMatch) > 0 && ifNoneMatch)
	unmodifiedSince := cond.UploadedBefore == nil || up.Before(trunc(*cond.UploadedBefore)) ||
		(len(cond.ETagMatches) > 0 && ifMatch)
	return ifMatch && ifNoneMatch && modifiedSince && unmodifiedSince
}

// stat returns an object's metadata.
func (r *R2) stat(ctx context.Context, account, bucket, key string) (R2Object, error) {
	info, err := r.blobs.c.StatObject(ctx, R2S3Bucket(account, bucket), key, minio.StatObjectOptions{})
	if err != nil {
		if er := minio.ToErrorResponse(err); isS3NotFound(err) && er.Code != "NoSuchBucket" {
			// HEAD answers carry no error code: tell a missing bucket
			// from a missing key.
			if ok, berr := r.blobs.c.BucketExists(ctx, R2S3Bucket(account, bucket)); berr == nil && !ok {
				return R2Object{}, r2NoSuchBucket()
			}
			return R2Object{}, r2NoSuchKey()
		}
		return R2Object{}, r2Err("head", err)
	}
	info.Key = key
	return r2Object(info, true), nil
}

// Head returns an object's metadata: 10007 when it does not exist.
func (r *R2) Head(ctx context.Context, account, bucket, key string) (R2Object, error) {
	if err := validR2Key(key); err != nil {
		return R2Object{}, err
	}
	return r.stat(ctx, account, bucket, key)
}

// r2ByteRange resolves a range against an object's size into its first
// byte and length.
func r2ByteRange(o R2GetOptions, size int64) (off, n int64, ranged bool, err error) {
	if o.Range == nil && o.RangeHeader != "" {
		spec, ok := strings.CutPrefix(strings.TrimSpace(o.RangeHeader), "bytes=")
		first, last, ok2 := strings.Cut(spec, "-")
		if !ok || !ok2 || strings.Contains(spec, ",") {
			return 0, size, false, nil // not a single byte range: the whole object
		}
		rg := &R2Range{}
		a, aerr := strconv.ParseInt(first, 10, 64)
		b, berr := strconv.ParseInt(last, 10, 64)
		switch {
		case first == "" && berr == nil:
			rg.Suffix = &b
		case aerr == nil && last == "":
			rg.Offset = &a
		case aerr == nil && berr == nil && b >= a:
			l := b - a + 1
			rg.Offset, rg.Length = &a, &l
		default:
			return 0, 0, false, r2InvalidRange()
		}
		o.Range = rg
	}
	if o.Range == nil {
		return 0, size, false, nil
	}
	rg := o.Range
	if rg.Suffix != nil {
		s := *rg.Suffix
		if s <= 0 {
			return 0, 0, false, r2InvalidRange()
		}
		s = min(s, size)
		return size - s, s, true, nil
	}
	if rg.Offset != nil {
		off = *rg.Offset
	}
	n = size - off
	if rg.Length != nil {
		n = *rg.Length
	}
	if off < 0 || off > size || n < 0 || (n == 0 && rg.Length != nil && size > 0) {
		return 0, 0, false, r2InvalidRange()
	}
	n = min(n, size-off)
	return off, n, true, nil
}

// Get returns an object's metadata and its body (the range asked for),
// which the caller must close. When opts.OnlyIf does not hold it returns
// the metadata, no body, and R2PreconditionFailed (10031); a missing object
// is 10007.
func (r *R2) Get(ctx context.Context, account, bucket, key string, opts R2GetOptions) (R2Object, io.ReadCloser, error) {
	if err := validR2Key(key); err != nil {
		return R2Object{}, nil, err
	}
	o, err := r.stat(ctx, account, bucket, key)
	if err != nil {
		return R2Object{}, nil, err
	}
	o.RangeOffset, o.RangeLength = 0, o.Size
	if !r2Holds(opts.OnlyIf, &o) {
		return o, nil, R2PreconditionFailed()
	}
	off, n, ranged, err := r2ByteRange(opts, o.Size)
	if err != nil {
		return R2Object{}, nil, err
	}
	o.RangeOffset, o.RangeLength = off, n
	if n == 0 {
		return o, io.NopCloser(bytes.NewReader(nil)), nil
	}
	var gopts minio.GetObjectOptions
	// The object read must be the one stat saw.
	_ = gopts.SetMatchETag(o.ETag)
	if ranged {
		if err := gopts.SetRange(off, off+n-1); err != nil {
			return R2Object{}, nil, r2InvalidRange()
		}
	}
	body, _, _, err := r.core.GetObject(ctx, R2S3Bucket(account, bucket), key, gopts)
	if err != nil {
		if minio.ToErrorResponse(err).Code == "PreconditionFailed" {
			return R2Object{}, nil, r2NoSuchKey() // replaced meanwhile
		}
		return R2Object{}, nil, r2Err("get", err)
	}
	return o, body, nil
}

// r2Hashes are the digests R2 can check, by algorithm name.
var r2Hashes = map[string]func() hash.Hash{
	"md5": md5.New, "sha1": sha1.New, "sha256": sha256.New, "sha384": sha512.New384, "sha512": sha512.New,
}

// Put stores an object of size bytes read from body, after checking
// opts.OnlyIf (10031 when it does not hold). Checksums in opts are checked
// as the body streams; on a mismatch (10037) the object is removed again.
func (r *R2) Put(ctx context.Context, account, bucket, key string, body io.Reader, size int64, opts R2PutOptions) (R2Object, error) {
	if err := validR2Key(key); err != nil {
		return R2Object{}, err
	}
	if err := r2CheckCustom(opts.Custom); err != nil {
		return R2Object{}, err
	}
	if opts.OnlyIf != nil {
		cur, err := r.stat(ctx, account, bucket, key)
		var cp *R2Object
		switch {
		case err == nil:
			cp = &cur
		case !IsNotFound(err, CodeR2NoSuchKey):
			return R2Object{}, err
		}
		if !r2Holds(opts.OnlyIf, cp) {
			return R2Object{}, R2PreconditionFailed()
		}
	}
	hashes := map[string]hash.Hash{}
	var writers []io.Writer
	for alg, want := range opts.Checksums {
		mk, ok := r2Hashes[alg]
		if !ok || len(want) == 0 {
			continue
		}
		hashes[alg] = mk()
		writers = append(writers, hashes[alg])
	}
	if len(writers) > 0 {
		body = io.TeeReader(body, io.MultiWriter(writers...))
	}
	md5b64 := ""
	if want := opts.Checksums["md5"]; len(want) == md5.Size {
		md5b64 = base64.StdEncoding.EncodeToString(want)
	}
	s3 := R2S3Bucket(account, bucket)
	putOpts := r2PutOptions(opts)
	putOpts.DisableContentSha256 = size == 0 // see BlobStore.Put
	if _, err := r.core.PutObject(ctx, s3, key, body, size, md5b64, "", putOpts); err != nil {
		return R2Object{}, r2Err("put", err)
	}
	for alg, h := range hashes {
		if got := h.Sum(nil); !bytes.Equal(got, opts.Checksums[alg]) {
			_ = r.blobs.c.RemoveObject(ctx, s3, key, minio.RemoveObjectOptions{})
			return R2Object{}, Errorf(Invalid, CodeR2BadDigest,
				"The %s checksum you specified did not match what we received. You provided a %s checksum with value: %x Actual %s was: %x",
				strings.ToUpper(alg), alg, opts.Checksums[alg], alg, got)
		}
	}
	o, err := r.stat(ctx, account, bucket, key)
	if err != nil {
		return R2Object{}, err
	}
	for alg := range hashes {
		o.Checksums[alg] = hex.EncodeToString(opts.Checksums[alg])
	}
	return o, nil
}

// Delete removes objects; missing ones are fine, a missing bucket is
// 10006.
func (r *R2) Delete(ctx context.Context, account, bucket string, keys ...string) error {
	if len(keys) > R2MaxDeleteKeys {
		return Errorf(Invalid, CodeR2InvalidArgument, "At most %d keys can be deleted at once.", R2MaxDeleteKeys)
	}
	for _, k := range keys {
		if err := validR2Key(k); err != nil {
			return err
		}
	}
	s3 := R2S3Bucket(account, bucket)
	errs := make([]error, len(keys))
	kvParallel(len(keys), func(i int) {
		err := r.blobs.c.RemoveObject(ctx, s3, keys[i], minio.RemoveObjectOptions{})
		if err != nil && minio.ToErrorResponse(err).Code != "NoSuchKey" {
			errs[i] = r2Err("delete", err)
		}
	})
	if err := errors.Join(errs...); err != nil {
		if e := AsError(err); e != nil {
			return e
		}
		return err
	}
	if len(keys) == 0 {
		if ok, err := r.blobs.c.BucketExists(ctx, s3); err == nil && !ok {
			return r2NoSuchBucket()
		}
	}
	return nil
}

// encodeR2Cursor wraps S3's continuation token into an opaque cursor.
func encodeR2Cursor(token string) string { return base64.RawURLEncoding.EncodeToString([]byte(token)) }

// List returns a page of the objects of a bucket in key order.
func (r *R2) List(ctx context.Context, account, bucket string, opts R2ListOptions) (R2List, error) {
	limit := opts.Limit
	if limit == 0 {
		limit = R2MaxListLimit
	}
	if limit < 1 || limit > R2MaxListLimit {
		return R2List{}, Errorf(Invalid, CodeR2InvalidMaxKeys, "MaxKeys params must be positive integer <= 1000.")
	}
	withMeta := opts.IncludeHTTP || opts.IncludeCustom
	if withMeta {
		limit = min(limit, r2MaxListWithMetadata)
	}
	token := ""
	if opts.Cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(opts.Cursor)
		if err != nil || len(b) == 0 {
			return R2List{}, Errorf(Invalid, CodeR2InvalidArgument, "Invalid cursor %q", opts.Cursor)
		}
		token = string(b)
	}
	s3 := R2S3Bucket(account, bucket)
	res, err := r.core.ListObjectsV2(s3, opts.Prefix, opts.StartAfter, token, opts.Delimiter, limit)
	if err != nil {
		return R2List{}, r2Err("list", err)
	}
	out := R2List{Objects: make([]R2Object, len(res.Contents)), DelimitedPrefixes: []string{}, Truncated: res.IsTruncated}
	if res.IsTruncated && res.NextContinuationToken != "" {
		out.Cursor = encodeR2Cursor(res.NextContinuationToken)
	}
	for _, p := range res.CommonPrefixes {
		out.DelimitedPrefixes = append(out.DelimitedPrefixes, p.Prefix)
	}
	errs := make([]error, len(res.Contents))
	parallel := 1
	if withMeta {
		parallel = r2Parallelism
	}
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, info := range res.Contents {
		if !withMeta {
			out.Objects[i] = r2Object(info, false)
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			o, err := r.stat(ctx, account, bucket, info.Key)
			if IsNotFound(err, CodeR2NoSuchKey) {
				o, err = r2Object(info, false), nil // deleted meanwhile
			}
			if !opts.IncludeHTTP {
				o.HTTP = nil
			}
			if !opts.IncludeCustom {
				o.Custom = nil
			}
			out.Objects[i], errs[i] = o, err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return R2List{}, err
	}
	return out, nil
}

// CreateMultipartUpload starts a multipart upload and returns its ID; the
// metadata in opts is the final object's.
func (r *R2) CreateMultipartUpload(ctx context.Context, account, bucket, key string, opts R2PutOptions) (string, error) {
	if err := validR2Key(key); err != nil {
		return "", err
	}
	if err := r2CheckCustom(opts.Custom); err != nil {
		return "", err
	}
	id, err := r.core.NewMultipartUpload(ctx, R2S3Bucket(account, bucket), key, r2PutOptions(opts))
	if err != nil {
		return "", r2Err("create multipart upload", err)
	}
	return id, nil
}

// UploadPart stores part number (1..10000) of an upload and returns its
// etag.
func (r *R2) UploadPart(ctx context.Context, account, bucket, key, uploadID string, number int, body io.Reader, size int64) (string, error) {
	if err := validR2Key(key); err != nil {
		return "", err
	}
	if number < 1 || number > 10000 {
		return "", Errorf(Invalid, CodeR2InvalidArgument, "Part number must be between 1 and 10000 (inclusive). Actual value was: %d", number)
	}
	p, err := r.core.PutObjectPart(ctx, R2S3Bucket(account, bucket), key, uploadID, number, body, size, minio.PutObjectPartOptions{})
	if err != nil {
		return "", r2Err("upload part", err)
	}
	return strings.Trim(p.ETag, `"`), nil
}

// CompleteMultipartUpload assembles the parts into the object.
func (r *R2) CompleteMultipartUpload(ctx context.Context, account, bucket, key, uploadID string, parts []R2Part) (R2Object, error) {
	if err := validR2Key(key); err != nil {
		return R2Object{}, err
	}
	cp := make([]minio.CompletePart, len(parts))
	for i, p := range parts {
		cp[i] = minio.CompletePart{PartNumber: p.Number, ETag: p.ETag}
	}
	sort.Slice(cp, func(i, j int) bool { return cp[i].PartNumber < cp[j].PartNumber })
	s3 := R2S3Bucket(account, bucket)
	if _, err := r.core.CompleteMultipartUpload(ctx, s3, key, uploadID, cp, minio.PutObjectOptions{}); err != nil {
		if minio.ToErrorResponse(err).Code == "InvalidPart" {
			// The S3 store may check the parts before the upload: an
			// aborted or completed upload is NoSuchUpload.
			if _, lerr := r.core.ListObjectParts(ctx, s3, key, uploadID, 0, 1); lerr != nil {
				err = lerr
			}
		}
		return R2Object{}, r2Err("complete multipart upload", err)
	}
	return r.stat(ctx, account, bucket, key)
}

// AbortMultipartUpload drops an upload and its parts.
func (r *R2) AbortMultipartUpload(ctx context.Context, account, bucket, key, uploadID string) error {
	if err := validR2Key(key); err != nil {
		return err
	}
	if err := r.core.AbortMultipartUpload(ctx, R2S3Bucket(account, bucket), key, uploadID); err != nil {
		return r2Err("abort multipart upload", err)
	}
	return nil
}
