package store_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/store/storetest"
)

func TestR2S3BucketNames(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`)
	acct := strings.Repeat("a", 32)
	short := store.R2S3Bucket(acct, "photos")
	long := store.R2S3Bucket(acct, strings.Repeat("x", 63))
	other := store.R2S3Bucket(strings.Repeat("b", 32), "photos")
	for _, n := range []string{short, long, other} {
		if !valid.MatchString(n) || len(n) > 63 {
			t.Errorf("S3 bucket name %q is not valid", n)
		}
	}
	if !strings.HasPrefix(short, "r2-") || !strings.HasSuffix(short, "-photos") || !strings.HasPrefix(long, "r2h-") {
		t.Errorf("names = %q, %q", short, long)
	}
	if short == other || store.R2S3Bucket(acct, "photos") != short || long == store.R2S3Bucket(acct, strings.Repeat("x", 62)) {
		t.Error("names are not per account, deterministic and distinct")
	}
	for _, bad := range []string{"ab", "-ab", "ab-", "Abc", "a_b", strings.Repeat("a", 64)} {
		if e := store.AsError(store.ValidR2BucketName(bad)); e == nil || e.Code != store.CodeR2InvalidBucket {
			t.Errorf("ValidR2BucketName(%q) = %v", bad, e)
		}
	}
}

func r2Code(err error) int {
	if e := store.AsError(err); e != nil {
		return e.Code
	}
	return 0
}

func TestR2Buckets(t *testing.T) {
	ctx := context.Background()
	clock := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	r2 := store.NewR2(blobs, func() time.Time { return clock })
	a, b := storetest.Account(t).ID, storetest.Account(t).ID

	created, err := r2.CreateBucket(ctx, a, "photos", "")
	if err != nil || created.Name != "photos" || !created.CreationDate.Equal(clock) || created.Location != "WNAM" {
		t.Fatalf("create = %+v, %v", created, err)
	}
	if _, err := r2.CreateBucket(ctx, a, "photos", ""); r2Code(err) != store.CodeR2BucketExists ||
		err.Error() != "The bucket you tried to create already exists, and you own it." {
		t.Errorf("create twice = %v", err)
	}
	if _, err := r2.CreateBucket(ctx, a, "No_Good", ""); r2Code(err) != store.CodeR2InvalidBucket {
		t.Errorf("create invalid = %v", err)
	}
	// The same name in another account is another bucket.
	if _, err := r2.CreateBucket(ctx, b, "photos", "eeur"); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("l", 63)
	if _, err := r2.CreateBucket(ctx, a, long, ""); err != nil {
		t.Fatal(err)
	}
	list, err := r2.Buckets(ctx, a)
	if err != nil || len(list) != 2 || list[0].Name != long || list[1].Name != "photos" {
		t.Fatalf("buckets of a = %+v, %v", list, err)
	}
	if got, err := r2.Bucket(ctx, b, "photos"); err != nil || got.Location != "EEUR" {
		t.Errorf("bucket of b = %+v, %v", got, err)
	}
	if _, err := r2.Bucket(ctx, a, "nope"); r2Code(err) != store.CodeR2NoSuchBucket {
		t.Errorf("unknown bucket = %v", err)
	}

	if _, err := r2.Put(ctx, a, "photos", "k", strings.NewReader("v"), 1, store.R2PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.Head(ctx, b, "photos", "k"); r2Code(err) != store.CodeR2NoSuchKey {
		t.Errorf("b sees a's object: %v", err)
	}
	if n, size, err := r2.Usage(ctx, a, "photos"); err != nil || n != 1 || size != 1 {
		t.Errorf("usage = %d %d %v", n, size, err)
	}
	if err := r2.DeleteBucket(ctx, a, "photos"); r2Code(err) != store.CodeR2BucketNotEmpty ||
		err.Error() != "The bucket you tried to delete is not empty." {
		t.Errorf("delete non-empty = %v", err)
	}
	if err := r2.Delete(ctx, a, "photos", "k"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"photos", long} {
		if err := r2.DeleteBucket(ctx, a, name); err != nil {
			t.Fatalf("delete %s: %v", name, err)
		}
	}
	if err := r2.DeleteBucket(ctx, a, "photos"); r2Code(err) != store.CodeR2NoSuchBucket ||
		err.Error() != "The specified bucket does not exist." {
		t.Errorf("delete twice = %v", err)
	}
	if _, err := r2.Put(ctx, a, "photos", "k", strings.NewReader("v"), 1, store.R2PutOptions{}); r2Code(err) != store.CodeR2NoSuchBucket {
		t.Errorf("put into deleted bucket = %v", err)
	}
	if list, err := r2.Buckets(ctx, a); err != nil || len(list) != 0 {
		t.Errorf("buckets after delete = %+v, %v", list, err)
	}
	// Recreated, it is empty.
	if _, err := r2.CreateBucket(ctx, a, "photos", ""); err != nil {
		t.Fatal(err)
	}
	if l, err := r2.List(ctx, a, "photos", store.R2ListOptions{}); err != nil || len(l.Objects) != 0 {
		t.Errorf("recreated = %+v, %v", l, err)
	}
}

// newR2Bucket returns the R2 store and a new bucket of a new account.
func newR2Bucket(t *testing.T) (*store.R2, string) {
	t.Helper()
	r2 := store.NewR2(blobs, nil)
	acct := storetest.Account(t).ID
	if _, err := r2.CreateBucket(context.Background(), acct, "bkt", ""); err != nil {
		t.Fatal(err)
	}
	return r2, acct
}

func readAll(t *testing.T, rc io.ReadCloser) string {
	t.Helper()
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestR2Objects(t *testing.T) {
	ctx := context.Background()
	r2, acct := newR2Bucket(t)
	body := "hello, r2 world"
	expires := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	custom := map[string]string{"owner": "ann", "Mixed Case": "vålue ✓"}
	put, err := r2.Put(ctx, acct, "bkt", "dir/file.txt", strings.NewReader(body), int64(len(body)), store.R2PutOptions{
		HTTP: store.R2HTTPMetadata{ContentType: "text/plain", ContentLanguage: "en", ContentDisposition: "inline",
			ContentEncoding: "identity", CacheControl: "max-age=60", CacheExpiry: expires},
		Custom: custom,
	})
	if err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum([]byte(body))
	if put.ETag != fmt.Sprintf("%x", sum) || put.Size != int64(len(body)) || put.Version == "" || put.Checksums["md5"] != put.ETag {
		t.Errorf("put = %+v", put)
	}
	if time.Since(put.Uploaded) > time.Minute {
		t.Errorf("uploaded = %v", put.Uploaded)
	}
	head, err := r2.Head(ctx, acct, "bkt", "dir/file.txt")
	if err != nil {
		t.Fatal(err)
	}
	wantHTTP := store.R2HTTPMetadata{ContentType: "text/plain", ContentLanguage: "en", ContentDisposition: "inline",
		ContentEncoding: "identity", CacheControl: "max-age=60", CacheExpiry: expires}
	if *head.HTTP != wantHTTP || fmt.Sprint(head.Custom) != fmt.Sprint(custom) || head.Version != put.Version {
		t.Errorf("head = %+v http %+v custom %v", head, head.HTTP, head.Custom)
	}
	// Without HTTP metadata an object has none, as on R2.
	if _, err := r2.Put(ctx, acct, "bkt", "plain", strings.NewReader("x"), 1, store.R2PutOptions{Custom: map[string]string{"a-b": "c d"}}); err != nil {
		t.Fatal(err)
	}
	if h, err := r2.Head(ctx, acct, "bkt", "plain"); err != nil || fmt.Sprint(h.Custom) != "map[a-b:c d]" || *h.HTTP != (store.R2HTTPMetadata{}) {
		t.Errorf("plain head = %+v, %v", h, err)
	}

	get := func(opts store.R2GetOptions) (store.R2Object, string, error) {
		t.Helper()
		o, rc, err := r2.Get(ctx, acct, "bkt", "dir/file.txt", opts)
		if err != nil {
			return o, "", err
		}
		return o, readAll(t, rc), nil
	}
	i := func(n int64) *int64 { return &n }
	for _, c := range []struct {
		rg       *store.R2Range
		header   string
		want     string
		off, len int64
	}{
		{nil, "", body, 0, 15},
		{&store.R2Range{Offset: i(7)}, "", "r2 world", 7, 8},
		{&store.R2Range{Offset: i(7), Length: i(2)}, "", "r2", 7, 2},
		{&store.R2Range{Length: i(5)}, "", "hello", 0, 5},
		{&store.R2Range{Suffix: i(5)}, "", "world", 10, 5},
		{&store.R2Range{Offset: i(10), Length: i(100)}, "", "world", 10, 5},
		{&store.R2Range{Suffix: i(100)}, "", body, 0, 15},
		{nil, "bytes=0-4", "hello", 0, 5},
		{nil, "bytes=-3", "rld", 12, 3},
	} {
		o, got, err := get(store.R2GetOptions{Range: c.rg, RangeHeader: c.header})
		if err != nil || got != c.want || o.RangeOffset != c.off || o.RangeLength != c.len {
			t.Errorf("range %+v %q = %q (%d+%d), %v", c.rg, c.header, got, o.RangeOffset, o.RangeLength, err)
		}
	}
	if _, _, err := get(store.R2GetOptions{Range: &store.R2Range{Offset: i(16)}}); r2Code(err) != store.CodeR2InvalidRange {
		t.Errorf("range past the end = %v", err)
	}

	// Conditional reads answer the metadata without a body.
	past, future := put.Uploaded.Add(-time.Hour), put.Uploaded.Add(time.Hour)
	for _, c := range []struct {
		cond store.R2Conditional
		ok   bool
	}{
		{store.R2Conditional{ETagMatches: []store.R2ETag{{Value: put.ETag}}}, true},
		{store.R2Conditional{ETagMatches: []store.R2ETag{{Value: "nope"}}}, false},
		{store.R2Conditional{ETagMatches: []store.R2ETag{{Wildcard: true}}}, true},
		{store.R2Conditional{ETagDoesNotMatch: []store.R2ETag{{Value: put.ETag}}}, false},
		{store.R2Conditional{ETagDoesNotMatch: []store.R2ETag{{Value: put.ETag, Weak: true}}}, false},
		{store.R2Conditional{ETagDoesNotMatch: []store.R2ETag{{Value: "other"}}}, true},
		{store.R2Conditional{UploadedAfter: &past}, true},
		{store.R2Conditional{UploadedAfter: &future}, false},
		{store.R2Conditional{UploadedBefore: &future}, true},
		{store.R2Conditional{UploadedBefore: &past}, false},
	} {
		o, got, err := get(store.R2GetOptions{OnlyIf: &c.cond})
		if c.ok && (err != nil || got != body) {
			t.Errorf("onlyIf %+v = %q, %v", c.cond, got, err)
		}
		if !c.ok && (r2Code(err) != store.CodeR2Precondition || o.ETag != put.ETag) {
			t.Errorf("onlyIf %+v = %+v, %v; want 10031 with metadata", c.cond, o, err)
		}
	}

	// Conditional and checked puts.
	if _, err := r2.Put(ctx, acct, "bkt", "dir/file.txt", strings.NewReader("x"), 1, store.R2PutOptions{
		OnlyIf: &store.R2Conditional{ETagMatches: []store.R2ETag{{Value: "nope"}}}}); r2Code(err) != store.CodeR2Precondition {
		t.Errorf("conditional put = %v", err)
	}
	if _, err := r2.Put(ctx, acct, "bkt", "new", strings.NewReader("x"), 1, store.R2PutOptions{
		OnlyIf: &store.R2Conditional{ETagDoesNotMatch: []store.R2ETag{{Wildcard: true}}}}); err != nil {
		t.Errorf("put if absent = %v", err)
	}
	good := sha256.Sum256([]byte("x"))
	if o, err := r2.Put(ctx, acct, "bkt", "sum", strings.NewReader("x"), 1, store.R2PutOptions{
		Checksums: map[string][]byte{"sha256": good[:]}}); err != nil || o.Checksums["sha256"] != fmt.Sprintf("%x", good) {
		t.Errorf("checked put = %+v, %v", o, err)
	}
	if _, err := r2.Put(ctx, acct, "bkt", "badsum", strings.NewReader("y"), 1, store.R2PutOptions{
		Checksums: map[string][]byte{"sha256": good[:]}}); r2Code(err) != store.CodeR2BadDigest {
		t.Errorf("bad sha256 = %v", err)
	}
	badMD5 := md5.Sum([]byte("z"))
	if _, err := r2.Put(ctx, acct, "bkt", "badsum", strings.NewReader("y"), 1, store.R2PutOptions{
		Checksums: map[string][]byte{"md5": badMD5[:]}}); r2Code(err) != store.CodeR2BadDigest {
		t.Errorf("bad md5 = %v", err)
	}
	if _, err := r2.Head(ctx, acct, "bkt", "badsum"); r2Code(err) != store.CodeR2NoSuchKey {
		t.Errorf("object with a bad checksum stored: %v", err)
	}
	if _, err := r2.Put(ctx, acct, "bkt", "big", strings.NewReader("x"), 1, store.R2PutOptions{
		Custom: map[string]string{"k": strings.Repeat("v", 2048)}}); r2Code(err) != store.CodeR2MetadataTooLarge {
		t.Errorf("metadata too large = %v", err)
	}

	// Missing objects and buckets.
	if _, _, err := r2.Get(ctx, acct, "bkt", "missing", store.R2GetOptions{}); r2Code(err) != store.CodeR2NoSuchKey {
		t.Errorf("get missing = %v", err)
	}
	if _, err := r2.Head(ctx, acct, "nobucket", "k"); r2Code(err) != store.CodeR2NoSuchBucket {
		t.Errorf("head in missing bucket = %v", err)
	}
	if _, err := r2.Head(ctx, acct, "bkt", strings.Repeat("k", 1025)); r2Code(err) != store.CodeR2InvalidObject {
		t.Errorf("long key = %v", err)
	}

	// Delete one and many; missing keys are fine.
	if err := r2.Delete(ctx, acct, "bkt", "plain"); err != nil {
		t.Fatal(err)
	}
	if err := r2.Delete(ctx, acct, "bkt", "new", "sum", "never-there"); err != nil {
		t.Fatal(err)
	}
	l, err := r2.List(ctx, acct, "bkt", store.R2ListOptions{})
	if err != nil || len(l.Objects) != 1 || l.Objects[0].Key != "dir/file.txt" || l.Objects[0].HTTP != nil {
		t.Errorf("after deletes = %+v, %v", l, err)
	}
}

func TestR2List(t *testing.T) {
	ctx := context.Background()
	r2, acct := newR2Bucket(t)
	keys := []string{"a", "b/1", "b/2", "b/3/x", "c", "d/1", "e"}
	for _, k := range keys {
		if _, err := r2.Put(ctx, acct, "bkt", k, strings.NewReader(k), int64(len(k)), store.R2PutOptions{
			HTTP: store.R2HTTPMetadata{ContentType: "text/x-" + strings.ReplaceAll(k, "/", "-")}, Custom: map[string]string{"k": k}}); err != nil {
			t.Fatal(err)
		}
	}
	names := func(l store.R2List) string {
		var s []string
		for _, o := range l.Objects {
			s = append(s, o.Key)
		}
		return strings.Join(s, ",") + "|" + strings.Join(l.DelimitedPrefixes, ",")
	}
	all, err := r2.List(ctx, acct, "bkt", store.R2ListOptions{})
	if err != nil || names(all) != strings.Join(keys, ",")+"|" || all.Truncated || all.Cursor != "" {
		t.Fatalf("list all = %s %+v, %v", names(all), all, err)
	}
	if o := all.Objects[1]; o.Size != 3 || o.ETag == "" || o.Uploaded.IsZero() || o.HTTP != nil || o.Custom != nil {
		t.Errorf("listed object = %+v", o)
	}
	pre, err := r2.List(ctx, acct, "bkt", store.R2ListOptions{Prefix: "b/"})
	if err != nil || names(pre) != "b/1,b/2,b/3/x|" {
		t.Errorf("prefix = %s, %v", names(pre), err)
	}
	del, err := r2.List(ctx, acct, "bkt", store.R2ListOptions{Delimiter: "/"})
	if err != nil || names(del) != "a,c,e|b/,d/" {
		t.Errorf("delimiter = %s, %v", names(del), err)
	}
	sub, err := r2.List(ctx, acct, "bkt", store.R2ListOptions{Prefix: "b/", Delimiter: "/"})
	if err != nil || names(sub) != "b/1,b/2|b/3/" {
		t.Errorf("prefix+delimiter = %s, %v", names(sub), err)
	}
	after, err := r2.List(ctx, acct, "bkt", store.R2ListOptions{StartAfter: "b/2"})
	if err != nil || names(after) != "b/3/x,c,d/1,e|" {
		t.Errorf("startAfter = %s, %v", names(after), err)
	}
	// Pages of 2 with a cursor walk every key once.
	var walked []string
	cursor := ""
	for page := 0; ; page++ {
		l, err := r2.List(ctx, acct, "bkt", store.R2ListOptions{Limit: 2, Cursor: cursor})
		if err != nil || page > 5 {
			t.Fatalf("page %d: %v", page, err)
		}
		for _, o := range l.Objects {
			walked = append(walked, o.Key)
		}
		if !l.Truncated {
			if l.Cursor != "" {
				t.Errorf("last page has cursor %q", l.Cursor)
			}
			break
		}
		if len(l.Objects) != 2 || l.Cursor == "" {
			t.Fatalf("page %d = %+v", page, l)
		}
		cursor = l.Cursor
	}
	if strings.Join(walked, ",") != strings.Join(keys, ",") {
		t.Errorf("paged = %v", walked)
	}
	inc, err := r2.List(ctx, acct, "bkt", store.R2ListOptions{Prefix: "b/", IncludeHTTP: true, IncludeCustom: true})
	if err != nil || len(inc.Objects) != 3 || inc.Objects[0].HTTP.ContentType != "text/x-b-1" || inc.Objects[2].Custom["k"] != "b/3/x" {
		t.Errorf("include = %+v, %v", inc, err)
	}
	onlyCustom, err := r2.List(ctx, acct, "bkt", store.R2ListOptions{Prefix: "a", IncludeCustom: true})
	if err != nil || len(onlyCustom.Objects) != 1 || onlyCustom.Objects[0].HTTP != nil || onlyCustom.Objects[0].Custom["k"] != "a" {
		t.Errorf("include custom = %+v, %v", onlyCustom, err)
	}
	for _, bad := range []int{-1, 1001} {
		if _, err := r2.List(ctx, acct, "bkt", store.R2ListOptions{Limit: bad}); r2Code(err) != store.CodeR2InvalidMaxKeys {
			t.Errorf("limit %d = %v", bad, err)
		}
	}
	if _, err := r2.List(ctx, acct, "missing", store.R2ListOptions{}); r2Code(err) != store.CodeR2NoSuchBucket {
		t.Errorf("list missing bucket = %v", err)
	}
}

func TestR2Multipart(t *testing.T) {
	ctx := context.Background()
	r2, acct := newR2Bucket(t)
	id, err := r2.CreateMultipartUpload(ctx, acct, "bkt", "big", store.R2PutOptions{
		HTTP: store.R2HTTPMetadata{ContentType: "application/x-big"}, Custom: map[string]string{"parts": "2"}})
	if err != nil || id == "" {
		t.Fatalf("create = %q, %v", id, err)
	}
	part1 := bytes.Repeat([]byte("a"), 5<<20)
	e1, err := r2.UploadPart(ctx, acct, "bkt", "big", id, 1, bytes.NewReader(part1), int64(len(part1)))
	if err != nil {
		t.Fatal(err)
	}
	e2, err := r2.UploadPart(ctx, acct, "bkt", "big", id, 2, strings.NewReader("tail"), 4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r2.UploadPart(ctx, acct, "bkt", "big", "no-such-upload", 1, strings.NewReader("x"), 1); r2Code(err) != store.CodeR2NoSuchUpload {
		t.Errorf("part of unknown upload = %v", err)
	}
	if _, err := r2.CompleteMultipartUpload(ctx, acct, "bkt", "big", id, []store.R2Part{{1, e1}, {2, "bogus"}}); r2Code(err) != store.CodeR2InvalidPart {
		t.Errorf("complete with a wrong etag = %v", err)
	}
	o, err := r2.CompleteMultipartUpload(ctx, acct, "bkt", "big", id, []store.R2Part{{2, e2}, {1, e1}})
	if err != nil {
		t.Fatal(err)
	}
	if o.Size != int64(len(part1))+4 || !strings.HasSuffix(o.ETag, "-2") || o.HTTP.ContentType != "application/x-big" || o.Custom["parts"] != "2" {
		t.Errorf("completed = %+v %+v", o, o.HTTP)
	}
	_, rc, err := r2.Get(ctx, acct, "bkt", "big", store.R2GetOptions{Range: &store.R2Range{Suffix: ptr(int64(6))}})
	if err != nil || readAll(t, rc) != "aatail" {
		t.Errorf("get across parts: %v", err)
	}

	id2, err := r2.CreateMultipartUpload(ctx, acct, "bkt", "aborted", store.R2PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r2.UploadPart(ctx, acct, "bkt", "aborted", id2, 1, strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	if err := r2.AbortMultipartUpload(ctx, acct, "bkt", "aborted", id2); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.CompleteMultipartUpload(ctx, acct, "bkt", "aborted", id2, []store.R2Part{{1, "x"}}); r2Code(err) != store.CodeR2NoSuchUpload {
		t.Errorf("complete aborted = %v", err)
	}
	if _, err := r2.Head(ctx, acct, "bkt", "aborted"); r2Code(err) != store.CodeR2NoSuchKey {
		t.Errorf("aborted object exists: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

// TestR2OverwriteReplacesMetadata: a put replaces the object's HTTP and
// custom metadata, even with none.
func TestR2OverwriteReplacesMetadata(t *testing.T) {
	ctx := context.Background()
	r2, acct := newR2Bucket(t)
	if _, err := r2.Put(ctx, acct, "bkt", "k", strings.NewReader("one"), 3, store.R2PutOptions{
		HTTP:   store.R2HTTPMetadata{ContentType: "text/plain", CacheControl: "max-age=60"},
		Custom: map[string]string{"owner": "ann", "Mixed Case": "x"},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.Put(ctx, acct, "bkt", "k", strings.NewReader("two!"), 4, store.R2PutOptions{}); err != nil {
		t.Fatal(err)
	}
	head, err := r2.Head(ctx, acct, "bkt", "k")
	if err != nil {
		t.Fatal(err)
	}
	if head.Size != 4 || len(head.Custom) != 0 || *head.HTTP != (store.R2HTTPMetadata{}) {
		t.Errorf("after an overwrite without metadata: size %d http %+v custom %v", head.Size, head.HTTP, head.Custom)
	}
}
