package store

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"

	apiv1 "github.com/octohq/octo/api/v1"
)

// The S3 key layout: everything octo keeps in its S3 bucket, by account.
// This file is the only place that builds keys.
//
//	accounts/<account>/                                          one prefix per account
//	├── workers/<script>/                                        ScriptPrefix: every file of a script
//	│   └── versions/<version id>/                               versionPrefix: one immutable version
//	│       ├── metadata.json                                    the version without secret values
//	│       └── modules/<escaped module name | sha256-<hex>>     moduleKey: one file per module
//	└── kv/<namespace id>/                                       kvNamespacePrefix: one KV namespace
//	    ├── namespace.json                                       {id, title, created_on}
//	    └── keys/<encoded key>                                   kvValueKey: one value; KV metadata and
//	                                                             expiration in the object's user metadata
//
// Script names are Cloudflare script names (ValidScriptName), account and
// namespace IDs 32 hex digits, version IDs UUIDs: none needs escaping. Module
// names and KV keys are user strings and are encoded below.

// Bucket is the S3 bucket holding octo's versions and KV data.
const Bucket = "octo"

// accountPrefix is where all of an account's files are.
func accountPrefix(account string) string { return "accounts/" + account + "/" }

// ScriptPrefix is the S3 key prefix of every file of an account's script.
func ScriptPrefix(account, script string) string {
	return accountPrefix(account) + "workers/" + script + "/"
}

// versionPrefix is where a version's files are.
func versionPrefix(account, script, versionID string) string {
	return fmt.Sprintf("%sversions/%s/", ScriptPrefix(account, script), versionID)
}

// metadataKey is a version's metadata.json.
func metadataKey(versionPrefix string) string { return versionPrefix + "metadata.json" }

// moduleKey is a module's key below its version: the escaped module name
// (escaping '/' keeps "a" and "a/b" apart), or its digest when that is too
// long for a file name in the S3 store's file system.
func moduleKey(versionPrefix, name string) string {
	if esc := url.PathEscape(name); len(esc) <= 200 {
		return versionPrefix + "modules/" + esc
	}
	sum := sha256.Sum256([]byte(name))
	return versionPrefix + "modules/sha256-" + hex.EncodeToString(sum[:])
}

// StoredModuleKey is where a version's module is: its recorded key, or, for
// a module recorded without one, <version prefix>modules/<name>.
func StoredModuleKey(versionPrefix string, m apiv1.WorkerModule) string {
	if m.Key != "" {
		return m.Key
	}
	return versionPrefix + "modules/" + m.Name
}

// kvAccountPrefix holds one "directory" per KV namespace of the account.
func kvAccountPrefix(account string) string { return accountPrefix(account) + "kv/" }

func kvNamespacePrefix(account, ns string) string { return kvAccountPrefix(account) + ns + "/" }

func kvNamespaceKey(account, ns string) string {
	return kvNamespacePrefix(account, ns) + "namespace.json"
}

func kvKeysPrefix(account, ns string) string { return kvNamespacePrefix(account, ns) + "keys/" }

func kvValueKey(account, ns, key string) string {
	return kvKeysPrefix(account, ns) + encodeKVKey(key)
}

// kvKeyEncoding is base64 with its alphabet in ASCII order, so that encoded
// strings sort like the raw bytes (a proper prefix sorts first because its
// encoding is shorter or its last, zero-padded character is smaller).
var kvKeyEncoding = base64.NewEncoding("-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz").WithPadding(base64.NoPadding)

const (
	// kvSegmentLen keeps every path segment under NAME_MAX (255): versitygw's
	// posix backend stores objects as files. A 512-byte key encodes to 683
	// characters, in 4 segments.
	kvSegmentLen = 200
	// kvKeyEnd ends every encoded key. It sorts before the alphabet and "/",
	// so a key still sorts before its extensions, and a key whose encoding
	// fills whole segments (file "X!") never collides with the directory
	// "X/" of a longer key.
	kvKeyEnd = '!'
)

// kvSegments splits an encoded key into path segments of kvSegmentLen.
func kvSegments(e string) string {
	var b strings.Builder
	for len(e) > kvSegmentLen {
		b.WriteString(e[:kvSegmentLen])
		b.WriteByte('/')
		e = e[kvSegmentLen:]
	}
	b.WriteString(e)
	return b.String()
}

// encodeKVKey maps any key to one object name (below the keys/ prefix) whose
// lexical order is the key's byte order.
func encodeKVKey(key string) string {
	return kvSegments(kvKeyEncoding.EncodeToString([]byte(key))) + string(kvKeyEnd)
}

// decodeKVKey reverses encodeKVKey.
func decodeKVKey(name string) (string, error) {
	e, ok := strings.CutSuffix(name, string(kvKeyEnd))
	if !ok {
		return "", fmt.Errorf("KV object name %q has no end mark", name)
	}
	b, err := kvKeyEncoding.DecodeString(strings.ReplaceAll(e, "/", ""))
	if err != nil {
		return "", fmt.Errorf("KV object name %q: %w", name, err)
	}
	return string(b), nil
}

// kvPrefixRange returns, for a key prefix, an S3 prefix shared by every
// encoded key that starts with it, and the S3 start-after that skips exactly
// the keys below it.
func kvPrefixRange(prefix string) (s3Prefix, startAfter string) {
	if prefix == "" {
		return "", ""
	}
	e := kvKeyEncoding.EncodeToString([]byte(prefix))
	// Only the characters made of whole prefix bits are shared by all keys
	// with the prefix; the last one carries padding bits.
	full := len(prefix) * 8 / 6
	// " " sorts before every character an encoded key uses, so start-after
	// "<prefix encoding> " lets the prefix itself (ending in kvKeyEnd) and
	// everything above it through.
	return kvSegments(e[:full]), kvSegments(e) + " "
}

// r2BucketsPrefix holds one record per R2 bucket of the account:
// accounts/<account>/r2/buckets/<bucket name>.json ({name, creation_date,
// location, storage_class}). The objects of an R2 bucket are not in octo's
// bucket but in an S3 bucket of their own (R2S3Bucket).
func r2BucketsPrefix(account string) string { return accountPrefix(account) + "r2/buckets/" }

// r2BucketKey is the record of an R2 bucket (names need no escaping:
// ValidR2BucketName).
func r2BucketKey(account, name string) string { return r2BucketsPrefix(account) + name + ".json" }
