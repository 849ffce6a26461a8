package jetstream

import (
	"errors"
	"fmt"
	"strings"
)

// Names of the ledger's JetStream objects (DESIGN section 1).
const (
	// StreamName is the stream that holds every account stream of the ledger.
	StreamName = "LEDGER"
	// SubjectPrefix starts the subject of every account stream; the account id follows.
	SubjectPrefix = "ledger.account."
	// streamSubjects is what the stream captures: every account.
	streamSubjects = SubjectPrefix + ">"
	// emptyToken stands for an empty subject token (see Subject). It is outside the
	// account id alphabet, so no valid id can produce it on its own.
	emptyToken = "~"
)

// accountIDLengthMax is the longest account id of API.md ("1..64 chars").
const accountIDLengthMax = 64

// Subject is the JetStream subject of an account's stream: ledger.account.{account_id}.
//
// A "." in an id makes more subject tokens; that is harmless because the store only ever
// uses the full subject as a literal filter, which matches exactly one subject. An id may
// however start or end with "." or hold "..", which would make an empty token and an
// invalid subject; such empty tokens are written as "~", a character no account id can
// hold, so the mapping stays one-to-one and ordinary ids keep their readable subject.
func Subject(accountID string) string {
	if accountID == "" || (accountID[0] != '.' && accountID[len(accountID)-1] != '.' && !strings.Contains(accountID, "..")) {
		return SubjectPrefix + accountID
	}
	tokens := strings.Split(accountID, ".")
	for i, tok := range tokens {
		if tok == "" {
			tokens[i] = emptyToken
		}
	}
	return SubjectPrefix + strings.Join(tokens, ".")
}

// errInvalidAccountID reports an account id that API.md does not allow. The store checks
// it because an id outside the alphabet ("*", ">", spaces) would turn the subject into a
// wildcard or split it, and then one account could read or block another.
var errInvalidAccountID = errors.New("invalid account id")

// checkAccountID accepts 1..64 chars of [A-Za-z0-9._:-].
func checkAccountID(id string) error {
	if len(id) == 0 || len(id) > accountIDLengthMax {
		return fmt.Errorf("%w %q: length %d not in 1..%d", errInvalidAccountID, id, len(id), accountIDLengthMax)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '.', c == '_', c == ':', c == '-':
		default:
			return fmt.Errorf("%w %q: character %q not in [A-Za-z0-9._:-]", errInvalidAccountID, id, c)
		}
	}
	return nil
}
