package fakecf

import (
	"context"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv1 "github.com/octohq/octo/internal/operators/api/v1"
)

// ClusterAccounts reads the accounts from the WorkerAccount objects of every
// namespace: the object's name is the account ID, as in the original sample.
type ClusterAccounts struct {
	Client client.Client
}

// Accounts implements AccountSource.
func (c ClusterAccounts) Accounts(ctx context.Context) ([]Account, error) {
	var list apiv1.WorkerAccountList
	if err := c.Client.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("list WorkerAccounts: %w", err)
	}
	out := make([]Account, 0, len(list.Items))
	for _, wa := range list.Items {
		if wa.DeletionTimestamp != nil {
			continue
		}
		a := Account{ID: wa.Name, Name: wa.Spec.DisplayName, Subdomain: wa.Spec.Subdomain, Namespace: wa.Namespace}
		if a.Name == "" {
			a.Name = wa.Name
		}
		if a.Subdomain == "" {
			a.Subdomain = wa.Name
		}
		if sel := wa.Spec.WorkerReleaseSelector; sel != nil {
			a.ReleaseLabels = sel.MatchLabels
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
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
		ObjectMeta: metav1.ObjectMeta{Name: a.ID, Namespace: a.Namespace},
		Spec:       apiv1.WorkerAccountSpec{WorkerBundleName: a.Subdomain, DisplayName: a.Name, Subdomain: a.Subdomain},
	}
	if err := c.Create(ctx, wa); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create default WorkerAccount: %w", err)
	}
	return nil
}
