package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// BlobStore is the S3 bucket the API keeps code, metadata and KV data in.
type BlobStore struct {
	c      *minio.Client
	bucket string
}

// NewBlobStore connects to the S3 endpoint (host:port, plain HTTP) and makes
// sure the bucket exists.
func NewBlobStore(ctx context.Context, endpoint, accessKey, secretKey, region, bucket string) (*BlobStore, error) {
	c, err := minio.New(endpoint, &minio.Options{Creds: credentials.NewStaticV4(accessKey, secretKey, ""), Region: region})
	if err != nil {
		return nil, fmt.Errorf("s3 client: %w", err)
	}
	exists, err := c.BucketExists(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("s3 bucket %s: %w", bucket, err)
	}
	if !exists {
		if err := c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: region}); err != nil {
			return nil, fmt.Errorf("create s3 bucket %s: %w", bucket, err)
		}
	}
	return &BlobStore{c: c, bucket: bucket}, nil
}

// isS3NotFound reports whether err is S3's answer for a missing object.
func isS3NotFound(err error) bool { return minio.ToErrorResponse(err).StatusCode == 404 }

// ErrBlobNotFound is returned by Get and Head for a missing key.
var ErrBlobNotFound = errors.New("blob not found")

// Put stores data under key with optional user metadata.
func (b *BlobStore) Put(ctx context.Context, key string, data []byte, contentType string, meta map[string]string) error {
	// An empty object goes without the streaming (aws-chunked) signature:
	// the S3 store leaves its empty final chunk unread on the connection,
	// and answers the next request on it 400 (4 in 200 empty puts,
	// TestPutEmptyKeepsTheConnection).
	_, err := b.c.PutObject(ctx, b.bucket, key, bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{ContentType: contentType, UserMetadata: meta, DisableContentSha256: len(data) == 0})
	if err != nil {
		return fmt.Errorf("s3 put %s: %w", key, err)
	}
	return nil
}

// Get returns the data and user metadata stored under key.
func (b *BlobStore) Get(ctx context.Context, key string) ([]byte, map[string]string, error) {
	obj, err := b.c.GetObject(ctx, b.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("s3 get %s: %w", key, err)
	}
	defer obj.Close()
	st, err := obj.Stat()
	if err != nil {
		if isS3NotFound(err) {
			return nil, nil, fmt.Errorf("%s: %w", key, ErrBlobNotFound)
		}
		return nil, nil, fmt.Errorf("s3 stat %s: %w", key, err)
	}
	data, err := io.ReadAll(obj)
	if err != nil {
		return nil, nil, fmt.Errorf("s3 read %s: %w", key, err)
	}
	return data, st.UserMetadata, nil
}

// Delete removes key; a missing key is not an error.
func (b *BlobStore) Delete(ctx context.Context, key string) error {
	err := b.c.RemoveObject(ctx, b.bucket, key, minio.RemoveObjectOptions{})
	if err != nil && !isS3NotFound(err) {
		return fmt.Errorf("s3 delete %s: %w", key, err)
	}
	return nil
}

// List returns the keys under prefix in lexical order, starting after
// startAfter, at most limit (0 = all).
func (b *BlobStore) List(ctx context.Context, prefix, startAfter string, limit int) ([]string, error) {
	var keys []string
	for obj := range b.c.ListObjects(ctx, b.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true, StartAfter: startAfter}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("s3 list %s: %w", prefix, obj.Err)
		}
		keys = append(keys, obj.Key)
		if limit > 0 && len(keys) >= limit {
			break
		}
	}
	return keys, nil
}

// DeletePrefix removes every key under prefix.
func (b *BlobStore) DeletePrefix(ctx context.Context, prefix string) error {
	keys, err := b.List(ctx, prefix, "", 0)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := b.Delete(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// Head returns the user metadata of the object under key; ErrBlobNotFound
// when it is missing.
func (b *BlobStore) Head(ctx context.Context, key string) (map[string]string, error) {
	info, err := b.c.StatObject(ctx, b.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		if isS3NotFound(err) {
			return nil, fmt.Errorf("%s: %w", key, ErrBlobNotFound)
		}
		return nil, fmt.Errorf("s3 stat %s: %w", key, err)
	}
	return info.UserMetadata, nil
}

// Dirs returns the names of the "directories" right below prefix.
func (b *BlobStore) Dirs(ctx context.Context, prefix string) ([]string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var out []string
	for obj := range b.c.ListObjects(ctx, b.bucket, minio.ListObjectsOptions{Prefix: prefix}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("s3 list %s: %w", prefix, obj.Err)
		}
		if name, ok := strings.CutSuffix(strings.TrimPrefix(obj.Key, prefix), "/"); ok && name != "" {
			out = append(out, name)
		}
	}
	return out, nil
}

// Size returns the size of the object under key; ErrBlobNotFound when it is
// missing.
func (b *BlobStore) Size(ctx context.Context, key string) (int64, error) {
	info, err := b.c.StatObject(ctx, b.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		if isS3NotFound(err) {
			return 0, fmt.Errorf("%s: %w", key, ErrBlobNotFound)
		}
		return 0, fmt.Errorf("s3 stat %s: %w", key, err)
	}
	return info.Size, nil
}

// Walk calls fn with the key and size of every object under prefix, in
// lexical order: one listing, without reading any object.
func (b *BlobStore) Walk(ctx context.Context, prefix string, fn func(key string, size int64)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for obj := range b.c.ListObjects(ctx, b.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			return fmt.Errorf("s3 list %s: %w", prefix, obj.Err)
		}
		fn(obj.Key, obj.Size)
	}
	return nil
}

// Open streams the object under key: its content, media type and size.
// The caller closes the reader.
func (b *BlobStore) Open(ctx context.Context, key string) (io.ReadCloser, string, int64, error) {
	obj, err := b.c.GetObject(ctx, b.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, "", 0, fmt.Errorf("s3 get %s: %w", key, err)
	}
	st, err := obj.Stat()
	if err != nil {
		obj.Close()
		if isS3NotFound(err) {
			return nil, "", 0, fmt.Errorf("%s: %w", key, ErrBlobNotFound)
		}
		return nil, "", 0, fmt.Errorf("s3 stat %s: %w", key, err)
	}
	return obj, st.ContentType, st.Size, nil
}
