package controller

import (
	"os"
	"reflect"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

// The chart's ClusterRole of the operators grants what PolicyRules says,
// no more and no less.
func TestChartGrantsPolicyRules(t *testing.T) {
	b, err := os.ReadFile("../../deploy/octo/templates/rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, doc := range strings.Split(string(b), "\n---") {
		if !strings.Contains(doc, "kind: ClusterRole\n") || !strings.Contains(doc, "name: {{ $fullname }}-operators\n") {
			continue
		}
		found = true
		// Template lines (names, labels) aside, the rules are plain YAML.
		var plain []string
		for _, line := range strings.Split(doc, "\n") {
			if !strings.Contains(line, "{{") {
				plain = append(plain, line)
			}
		}
		var role struct {
			Rules []rbacv1.PolicyRule `json:"rules"`
		}
		if err := yaml.Unmarshal([]byte(strings.Join(plain, "\n")), &role); err != nil {
			t.Fatalf("operators ClusterRole: %v", err)
		}
		if want := PolicyRules(); !reflect.DeepEqual(role.Rules, want) {
			t.Errorf("chart's operators rules:\n%+v\nwant PolicyRules():\n%+v", role.Rules, want)
		}
	}
	if !found {
		t.Fatal("no operators ClusterRole in deploy/octo/templates/rbac.yaml")
	}
}
