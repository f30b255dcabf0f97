package ledger

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// AccountSpec is an account of the reference file: created (or its limit updated) when a
// store opens, with an opening balance posted once against the currency's funding account.
type AccountSpec struct {
	ID       string
	Currency pipeline.Currency
	Kind     Kind
	Limit    int64 // minor units; customers only
	Opening  int64 // opening balance, minor units; may be negative down to -Limit
}

// FundingPrefix starts the id of the system account that funds the opening balances of a
// currency: "system:funding:EUR". It holds minus the sum of the opening balances, so every
// currency still sums to zero.
const FundingPrefix = "system:funding:"

// OpeningPrefix starts the transaction id of an opening-balance entry: "opening:acct-42".
const OpeningPrefix = "opening:"

// ReadAccountsFile reads account specs from a CSV file (a header line naming the columns
// account, currency, kind, limit, opening; limit and opening optional) or, when the name
// ends in .ndjson or .jsonl, from one JSON object a line with the same fields. limit and
// opening are decimals in the currency's major units ("2500.00"); kind defaults to
// customer.
func ReadAccountsFile(path string) ([]AccountSpec, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("ledger: accounts file: %w", err)
	}
	defer f.Close()
	var specs []AccountSpec
	if strings.HasSuffix(path, ".ndjson") || strings.HasSuffix(path, ".jsonl") {
		specs, err = readAccountsNDJSON(f)
	} else {
		specs, err = readAccountsCSV(f)
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: accounts file %s: %w", path, err)
	}
	return specs, nil
}

type accountRow struct {
	Account  string `json:"account"`
	Currency string `json:"currency"`
	Kind     string `json:"kind"`
	Limit    string `json:"limit"`
	Opening  string `json:"opening"`
}

func readAccountsNDJSON(r io.Reader) ([]AccountSpec, error) {
	var specs []AccountSpec
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var row accountRow
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&row); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		s, err := row.spec()
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		specs = append(specs, s)
	}
	return specs, sc.Err()
}

func readAccountsCSV(r io.Reader) ([]AccountSpec, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	col := map[string]int{}
	for i, h := range head {
		h = strings.ToLower(strings.TrimSpace(h))
		switch h {
		case "account", "currency", "kind", "limit", "opening":
			col[h] = i
		default:
			return nil, fmt.Errorf("line 1: unknown column %q (want account, currency, kind, limit, opening)", h)
		}
	}
	if _, ok := col["account"]; !ok {
		return nil, errors.New("line 1: no account column")
	}
	if _, ok := col["currency"]; !ok {
		return nil, errors.New("line 1: no currency column")
	}
	get := func(rec []string, name string) string {
		if i, ok := col[name]; ok && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	var specs []AccountSpec
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return specs, nil
		}
		if err != nil {
			return nil, err
		}
		line, _ := cr.FieldPos(0)
		row := accountRow{get(rec, "account"), get(rec, "currency"), get(rec, "kind"), get(rec, "limit"), get(rec, "opening")}
		s, err := row.spec()
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		specs = append(specs, s)
	}
}

func (r accountRow) spec() (AccountSpec, error) {
	s := AccountSpec{ID: r.Account, Kind: Kind(r.Kind)}
	if s.ID == "" {
		return s, errors.New("empty account")
	}
	cur, ok := pipeline.LookupCurrency(r.Currency)
	if !ok {
		return s, fmt.Errorf("account %q: unknown currency %q", s.ID, r.Currency)
	}
	s.Currency = cur
	switch s.Kind {
	case "":
		s.Kind = KindCustomer
	case KindCustomer, KindMerchant, KindSystem:
	default:
		return s, fmt.Errorf("account %q: kind %q: want customer, merchant or system", s.ID, r.Kind)
	}
	var err error
	if r.Limit != "" {
		if s.Limit, err = pipeline.ParseAmount(r.Limit, cur.Digits); err != nil || s.Limit < 0 {
			return s, fmt.Errorf("account %q: limit %q: want a decimal >= 0 with at most %d fraction digits", s.ID, r.Limit, cur.Digits)
		}
	}
	if r.Opening != "" {
		if s.Opening, err = pipeline.ParseAmount(r.Opening, cur.Digits); err != nil {
			return s, fmt.Errorf("account %q: opening %q: want a decimal with at most %d fraction digits", s.ID, r.Opening, cur.Digits)
		}
	}
	if s.Kind != KindCustomer && s.Limit != 0 {
		return s, fmt.Errorf("account %q: only customer accounts have a limit", s.ID)
	}
	return s, nil
}

// openAccounts creates the accounts of specs, sets their limits and posts their opening
// balances, in one batch; c.mu is held. An opening balance is posted once: a later change
// of it in the file is ignored (post an adjustment instead).
func (c *core) openAccounts(ctx context.Context, specs []AccountSpec) error {
	if len(specs) == 0 {
		return nil
	}
	seen := make(map[string]bool, len(specs))
	var reqs []pipeline.PostRequest
	for _, s := range specs {
		if seen[s.ID] {
			return fmt.Errorf("ledger: accounts: %q listed twice", s.ID)
		}
		seen[s.ID] = true
		if strings.HasPrefix(s.ID, FundingPrefix) {
			return fmt.Errorf("ledger: accounts: %q: the %s accounts are the ledger's own", s.ID, FundingPrefix)
		}
		if s.Opening == 0 {
			continue
		}
		r := pipeline.PostRequest{TxID: OpeningPrefix + s.ID, Payer: FundingPrefix + s.Currency.Code, Payee: s.ID, Amount: s.Opening, Currency: s.Currency}
		if s.Opening < 0 {
			r.Payer, r.Payee, r.Amount = r.Payee, r.Payer, -s.Opening
		}
		reqs = append(reqs, r)
	}
	pre := func(now int64) error {
		for _, s := range specs {
			if err := c.book.ensure(s.ID, s.Currency.Code, s.Kind, s.Limit, now); err != nil {
				return err
			}
			if s.Opening != 0 {
				if err := c.book.ensure(FundingPrefix+s.Currency.Code, s.Currency.Code, KindSystem, 0, now); err != nil {
					return err
				}
			}
		}
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.postLocked(ctx, reqs, nil, pre); err != nil {
		return fmt.Errorf("ledger: accounts: %w", err)
	}
	for _, r := range reqs {
		if r.Status == pipeline.LedgerRejected {
			return fmt.Errorf("ledger: accounts: opening balance of %q: %s", strings.TrimPrefix(r.TxID, OpeningPrefix), r.Reason)
		}
	}
	return nil
}
