package store

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv1 "github.com/octohq/octo/api/v1"
)

// DefaultNamespace is the Kubernetes namespace of the default account's objects.
const DefaultNamespace = "octo"

// Account is one Cloudflare account octo serves.
type Account struct {
	ID        string
	Name      string
	Subdomain string
	// Namespace is the Kubernetes namespace holding the account's objects.
	Namespace string
	// ReleaseLabels are added to the account's objects so that the
	// WorkerAccount's workerReleaseSelector selects them.
	ReleaseLabels map[string]string
}

// AccountSource lists the accounts: the default one and every WorkerAccount.
type AccountSource interface {
	Accounts(ctx context.Context) ([]Account, error)
}

// AccountOf is the account a WorkerAccount describes: its name is the account
// ID, as in the original sample; the display name and the workers subdomain
// default to it.
func AccountOf(wa *apiv1.WorkerAccount) Account {
	a := Account{
		ID: wa.Name, Name: cmp.Or(wa.Spec.DisplayName, wa.Name), Subdomain: cmp.Or(wa.Spec.Subdomain, wa.Name),
		Namespace: wa.Namespace,
	}
	if sel := wa.Spec.WorkerReleaseSelector; sel != nil {
		a.ReleaseLabels = sel.MatchLabels
	}
	return a
}

// ClusterAccounts reads the accounts from the WorkerAccount objects of every
// namespace, through any reader (a direct client or an informer cache).
type ClusterAccounts struct {
	Reader client.Reader
}

// Accounts implements AccountSource: every WorkerAccount not being deleted,
// by ID.
func (c ClusterAccounts) Accounts(ctx context.Context) ([]Account, error) {
	var list apiv1.WorkerAccountList
	if err := c.Reader.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("list WorkerAccounts: %w", err)
	}
	out := make([]Account, 0, len(list.Items))
	for i := range list.Items {
		if list.Items[i].DeletionTimestamp != nil {
			continue
		}
		out = append(out, AccountOf(&list.Items[i]))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// StaticAccounts serves a fixed list of accounts.
type StaticAccounts []Account

// Accounts implements AccountSource.
func (s StaticAccounts) Accounts(context.Context) ([]Account, error) { return s, nil }

// FindAccount returns the account with id from src, or a NotFound refusal.
func FindAccount(ctx context.Context, src AccountSource, id string) (Account, error) {
	accounts, err := src.Accounts(ctx)
	if err != nil {
		return Account{}, err
	}
	var found []Account
	for _, a := range accounts {
		if a.ID == id {
			found = append(found, a)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
	default:
		ns := make([]string, len(found))
		for i, a := range found {
			ns[i] = a.Namespace
		}
		return Account{}, Errorf(Conflict, CodeNoRoute, "account %s is defined by WorkerAccounts in namespaces %s: delete all but one", id, strings.Join(ns, ", "))
	}
	return Account{}, Errorf(NotFound, CodeNoRoute, "Could not route to /accounts/%s, perhaps your object identifier is invalid?", id)
}

// DefaultAccount is the account the identity describes.
func (id Identity) DefaultAccount() Account {
	return Account{ID: id.AccountID, Name: id.AccountName, Subdomain: id.Subdomain, Namespace: cmp.Or(id.Namespace, DefaultNamespace)}
}

// EnsureDefaultAccount creates the default account's namespace and
// WorkerAccount if they are missing.
func EnsureDefaultAccount(ctx context.Context, c client.Client, id Identity) error {
	a := id.DefaultAccount()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: a.Namespace}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", a.Namespace, err)
	}
	wa := &apiv1.WorkerAccount{
		TypeMeta:   metav1.TypeMeta{APIVersion: apiv1.GroupVersion.String(), Kind: "WorkerAccount"},
		ObjectMeta: metav1.ObjectMeta{Name: a.ID, Namespace: a.Namespace},
		Spec: apiv1.WorkerAccountSpec{WorkerBundleName: a.Subdomain, DisplayName: a.Name, Subdomain: a.Subdomain,
			PodTemplate: apiv1.WorkerPodTemplate{ImagePullSecret: id.ImagePullSecret}},
	}
	err := c.Get(ctx, client.ObjectKeyFromObject(wa), &apiv1.WorkerAccount{})
	if err == nil {
		return ensureListed(ctx, c, wa)
	}
	if !apierrors.IsNotFound(err) {
		return err
	}
	// An apply creates it, not a create: the API server holds every create
	// of a custom resource for 2 s after its CRD became Established (for
	// servers behind a load balancer), and at a cold start this comes half
	// a second after. Fields the user changes later stay theirs: this runs
	// only when the account is missing.
	body, err := json.Marshal(wa)
	if err != nil {
		return fmt.Errorf("encode default WorkerAccount: %w", err)
	}
	if err := c.Patch(ctx, wa, client.RawPatch(types.ApplyPatchType, body), client.FieldOwner("octo")); err != nil {
		return fmt.Errorf("create default WorkerAccount: %w", err)
	}
	return ensureListed(ctx, c, wa)
}

// Listing the default account: how often and how long to look before
// touching it, and how long in all.
const (
	listedPoll    = 50 * time.Millisecond
	listedTouchAt = time.Second
	listedGiveUp  = 5 * time.Second
)

// ensureListed waits until a List of the namespace's WorkerAccounts shows
// wa: every reader (the API, the gateway, the operators) lists through the
// API server's watch cache, and a cache that missed the account's create
// event (seen once at a loaded cold start, with kine v0.16.3: the first
// object of a new CRD) would hide it for good. If the account is not listed
// within listedTouchAt it is written again (an annotation), which sends a
// new event; after listedGiveUp the start goes on.
func ensureListed(ctx context.Context, c client.Client, wa *apiv1.WorkerAccount) error {
	start := time.Now()
	touched := false
	for {
		var list apiv1.WorkerAccountList
		if err := c.List(ctx, &list, client.InNamespace(wa.Namespace)); err != nil {
			return fmt.Errorf("list WorkerAccounts: %w", err)
		}
		for _, a := range list.Items {
			if a.Name == wa.Name {
				return nil
			}
		}
		waited := time.Since(start)
		if waited >= listedGiveUp {
			return nil
		}
		if !touched && waited >= listedTouchAt {
			touched = true
			patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, apiv1.AnnotationListedAt, time.Now().UTC().Format(time.RFC3339Nano))
			if err := c.Patch(ctx, wa.DeepCopy(), client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
				return fmt.Errorf("touch the default WorkerAccount: %w", err)
			}
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(listedPoll):
		}
	}
}

// SubdomainClaims sorts accounts by their workers subdomain (lower-case)
// and names what more than one of them claims: such a subdomain, or the
// account ID behind it, is not served (the gateway answers 409), rather
// than served by whichever object sorts first.
type SubdomainClaims struct {
	// BySubdomain is the account of each subdomain only one account claims.
	BySubdomain map[string]Account
	// Subdomains maps each subdomain more than one account claims to their
	// namespaces.
	Subdomains map[string][]string
	// IDs maps each account ID more than one account with a subdomain
	// claims to their namespaces.
	IDs map[string][]string
}

// ClaimSubdomains returns the SubdomainClaims of accounts; those without a
// subdomain claim nothing.
func ClaimSubdomains(accounts []Account) SubdomainClaims {
	c := SubdomainClaims{BySubdomain: map[string]Account{}, Subdomains: map[string][]string{}, IDs: map[string][]string{}}
	subs, ids := map[string][]string{}, map[string][]string{}
	for _, a := range accounts {
		k := strings.ToLower(a.Subdomain)
		if k == "" {
			continue
		}
		subs[k] = append(subs[k], a.Namespace)
		ids[a.ID] = append(ids[a.ID], a.Namespace)
		c.BySubdomain[k] = a
	}
	for k, ns := range subs {
		if len(ns) > 1 {
			c.Subdomains[k] = ns
			delete(c.BySubdomain, k)
		}
	}
	for id, ns := range ids {
		if len(ns) > 1 {
			c.IDs[id] = ns
		}
	}
	return c
}

// Served returns the account that serves sub: none when no account claims
// it, or when more than one claims it or its account's ID.
func (c SubdomainClaims) Served(sub string) (Account, bool) {
	a, ok := c.BySubdomain[sub]
	if !ok || c.IDs[a.ID] != nil {
		return Account{}, false
	}
	return a, true
}
