package teardown

import (
	"os"
	"slices"
	"testing"
)

func TestFilterRules(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		removed []Chain
	}{
		{
			name: "empty",
		},
		{
			name: "unrelated rules are kept byte for byte",
			in: "*filter\n:INPUT ACCEPT [0:0]\n:DOCKER - [0:0]\n:MYKUBE-X - [0:0]\n" +
				"-A INPUT -s 10.0.0.1/32 -j DROP\n-A INPUT -j MYKUBE-X\n-A DOCKER -j RETURN\nCOMMIT\n",
			want: "*filter\n:INPUT ACCEPT [0:0]\n:DOCKER - [0:0]\n:MYKUBE-X - [0:0]\n" +
				"-A INPUT -s 10.0.0.1/32 -j DROP\n-A INPUT -j MYKUBE-X\n-A DOCKER -j RETURN\nCOMMIT\n",
		},
		{
			name: "KUBE chain, its rules and jumps to it are dropped, table and COMMIT kept",
			in: "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n" +
				"-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n" +
				"-A KUBE-SERVICES -d 10.43.0.1/32 -j RETURN\nCOMMIT\n",
			want:    "*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n",
			removed: []Chain{{"nat", "KUBE-SERVICES"}},
		},
		{
			name: "CNI chains, goto and insert forms",
			in: "*nat\n:POSTROUTING ACCEPT [0:0]\n:CNI-abc - [0:0]\n:USER - [0:0]\n" +
				"-I POSTROUTING 1 -s 10.42.0.5/32 -j CNI-abc\n" +
				"--append USER -g CNI-abc\n" +
				"-A USER --jump ACCEPT\n" +
				"-A CNI-abc ! -d 224.0.0.0/4 -j MASQUERADE\nCOMMIT\n",
			want:    "*nat\n:POSTROUTING ACCEPT [0:0]\n:USER - [0:0]\n-A USER --jump ACCEPT\nCOMMIT\n",
			removed: []Chain{{"nat", "CNI-abc"}},
		},
		{
			name: "a KUBE- word inside a quoted comment is not a jump",
			in: "*filter\n:INPUT ACCEPT [0:0]\n" +
				"-A INPUT -m comment --comment \"say \\\"-j KUBE-X\\\" -j KUBE-Y\" -j ACCEPT\nCOMMIT\n",
			want: "*filter\n:INPUT ACCEPT [0:0]\n" +
				"-A INPUT -m comment --comment \"say \\\"-j KUBE-X\\\" -j KUBE-Y\" -j ACCEPT\nCOMMIT\n",
		},
		{
			name:    "counters from iptables-save -c",
			in:      "*filter\n:INPUT ACCEPT [10:600]\n:KUBE-FIREWALL - [0:0]\n[3:180] -A INPUT -j KUBE-FIREWALL\n[1:60] -A INPUT -j ACCEPT\nCOMMIT\n",
			want:    "*filter\n:INPUT ACCEPT [10:600]\n[1:60] -A INPUT -j ACCEPT\nCOMMIT\n",
			removed: []Chain{{"filter", "KUBE-FIREWALL"}},
		},
		{
			name:    "no trailing newline",
			in:      "*mangle\n:KUBE-IPTABLES-HINT - [0:0]\nCOMMIT",
			want:    "*mangle\nCOMMIT",
			removed: []Chain{{"mangle", "KUBE-IPTABLES-HINT"}},
		},
		{
			name: "several tables keep their own chains",
			in: "*mangle\n:KUBE-KUBELET-CANARY - [0:0]\nCOMMIT\n" +
				"*filter\n:KUBE-KUBELET-CANARY - [0:0]\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j ACCEPT\nCOMMIT\n",
			want:    "*mangle\nCOMMIT\n*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j ACCEPT\nCOMMIT\n",
			removed: []Chain{{"mangle", "KUBE-KUBELET-CANARY"}, {"filter", "KUBE-KUBELET-CANARY"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, removed := FilterRules(tt.in)
			if got != tt.want {
				t.Errorf("filtered:\n%s\nwant:\n%s", got, tt.want)
			}
			if !slices.Equal(removed, tt.removed) {
				t.Errorf("removed = %v, want %v", removed, tt.removed)
			}
		})
	}
}

func TestFilterRulesKubeProxyFixture(t *testing.T) {
	in, err := os.ReadFile("testdata/iptables-save.txt")
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/iptables-filtered.txt")
	if err != nil {
		t.Fatal(err)
	}
	got, removed := FilterRules(string(in))
	if got != string(want) {
		t.Errorf("filtered:\n%s\nwant:\n%s", got, want)
	}
	if len(removed) != 24 {
		t.Errorf("removed %d chains, want 24: %v", len(removed), removed)
	}
	// Filtering is idempotent.
	again, removedAgain := FilterRules(got)
	if again != got || len(removedAgain) != 0 {
		t.Errorf("second filter changed the rules or removed %v", removedAgain)
	}
}

func TestSplitRule(t *testing.T) {
	got := splitRule(`-A X -m comment --comment "a \"b\" c"  -j  Y`)
	want := []string{"-A", "X", "-m", "comment", "--comment", `a "b" c`, "-j", "Y"}
	if !slices.Equal(got, want) {
		t.Errorf("splitRule = %q, want %q", got, want)
	}
}
