package teardown

import (
	"strings"
)

// isOctoChain reports whether name is a chain octo's components create:
// kube-proxy and the kubelet name theirs KUBE-*, the CNI bridge (ipMasq) and
// portmap plugins CNI-*, octo's pod network firewall OCTO-*.
func isOctoChain(name string) bool {
	return strings.HasPrefix(name, "KUBE-") || strings.HasPrefix(name, "CNI-") || strings.HasPrefix(name, "OCTO-")
}

// Chain is one iptables chain.
type Chain struct {
	// Table is the iptables table (filter, nat, mangle, ...), Name the chain.
	Table, Name string
}

// FilterRules removes octo's chains from iptables-save output: the
// declarations of KUBE-* and CNI-* chains, the rules in them and every rule
// that jumps or goes to them. Table headers, COMMIT lines, comments, other
// chains and their rules are kept byte for byte, so that feeding the result to
// iptables-restore flushes each table and rebuilds it without octo's chains.
// It returns the filtered text and the chains it removed, in input order. An
// input without octo's chains is returned unchanged.
func FilterRules(save string) (filtered string, removed []Chain) {
	lines := strings.SplitAfter(save, "\n")
	var b strings.Builder
	b.Grow(len(save))
	table := ""
	for _, line := range lines {
		text := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(text, "*"):
			table = strings.TrimPrefix(text, "*")
		case strings.HasPrefix(text, ":"):
			name, _, _ := strings.Cut(strings.TrimPrefix(text, ":"), " ")
			if isOctoChain(name) {
				removed = append(removed, Chain{Table: table, Name: name})
				continue
			}
		case text != "" && !strings.HasPrefix(text, "#") && text != "COMMIT":
			if ruleUsesOctoChain(text) {
				continue
			}
		}
		b.WriteString(line)
	}
	return b.String(), removed
}

// ruleUsesOctoChain reports whether an iptables-save rule line is appended to,
// inserted in, jumps to or goes to one of octo's chains.
func ruleUsesOctoChain(rule string) bool {
	words := splitRule(rule)
	// iptables-save -c prefixes rules with "[packets:bytes]".
	if len(words) > 0 && strings.HasPrefix(words[0], "[") {
		words = words[1:]
	}
	for i := 0; i+1 < len(words); i++ {
		switch words[i] {
		case "-A", "--append", "-I", "--insert", "-j", "--jump", "-g", "--goto":
			if isOctoChain(words[i+1]) {
				return true
			}
		}
	}
	return false
}

// splitRule splits an iptables-save rule into words the way iptables-restore
// does: on blanks, except inside double quotes, where a backslash escapes the
// next character. Quotes are removed.
func splitRule(rule string) []string {
	var words []string
	var w strings.Builder
	inWord, quoted, escaped := false, false, false
	for _, r := range rule {
		switch {
		case escaped:
			w.WriteRune(r)
			escaped = false
		case quoted && r == '\\':
			escaped = true
		case r == '"':
			quoted = !quoted
			inWord = true
		case !quoted && (r == ' ' || r == '\t'):
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}
