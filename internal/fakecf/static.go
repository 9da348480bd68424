package fakecf

import "context"

// DefaultNamespace is the Kubernetes namespace of the default account's objects.
const DefaultNamespace = "octo"

// StaticAccounts serves a fixed list of accounts.
type StaticAccounts []Account

// Accounts implements AccountSource.
func (s StaticAccounts) Accounts(context.Context) ([]Account, error) { return s, nil }

// DefaultAccount is the account the identity describes.
func (id Identity) DefaultAccount() Account {
	return Account{ID: id.AccountID, Name: id.AccountName, Subdomain: id.Subdomain, Namespace: DefaultNamespace}
}
