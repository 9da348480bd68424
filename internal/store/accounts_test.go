package store

import (
	"context"
	"strings"
	"testing"
)

func TestFindAccountRefusesDuplicates(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef"
	src := StaticAccounts{{ID: id, Namespace: "octo"}, {ID: "ffffffffffffffffffffffffffffffff", Namespace: "octo"}}
	if a, err := FindAccount(context.Background(), src, id); err != nil || a.Namespace != "octo" {
		t.Fatalf("FindAccount = %+v, %v", a, err)
	}
	src = append(src, Account{ID: id, Namespace: "tenant-b"})
	_, err := FindAccount(context.Background(), src, id)
	if e := AsError(err); e == nil || e.Kind != Conflict || !strings.Contains(e.Msg, "octo, tenant-b") {
		t.Fatalf("FindAccount of an ID two WorkerAccounts claim = %v, want a Conflict naming both namespaces", err)
	}
}
