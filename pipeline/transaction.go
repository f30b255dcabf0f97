package pipeline

// Channel is how a payment was made.
type Channel uint8

// Channels of CONTRACT.md; ChannelPOS is the default when the field is absent.
const (
	ChannelPOS Channel = iota
	ChannelEcom
	ChannelATM
	ChannelTransfer
)

var channelNames = [...]string{"pos", "ecom", "atm", "transfer"}

// String returns the channel's name as it appears in the input.
func (c Channel) String() string {
	if int(c) < len(channelNames) {
		return channelNames[c]
	}
	return "unknown"
}

// ParseChannel maps an input channel name to a Channel.
func ParseChannel(s string) (Channel, bool) {
	for i, n := range channelNames {
		if n == s {
			return Channel(i), true
		}
	}
	return 0, false
}

// Label is the ground truth attached to a recorded transaction, for training and evaluation
// only: no scorer may read it.
type Label struct {
	Present  bool
	Fraud    bool
	Scenario string
}

// Transaction is one payment, the input event of CONTRACT.md, validated. Money is in
// integer minor units of Currency.
type Transaction struct {
	ID         string
	TSText     string // the ts field as received, echoed in decisions
	TS         int64  // event time, Unix milliseconds
	CardID     string
	AccountID  string
	MerchantID string
	Amount     int64 // minor units, > 0
	Currency   Currency
	CustomerID string
	TerminalID string
	Channel    Channel
	MCC        string
	Country    string
	Lat, Lon   float64 // valid when HasGeo
	HasGeo     bool
	DeviceID   string
	IP         string
	Label      Label
}

// Feedback says, after the fact, whether a transaction was fraud (chargebacks, analyst
// verdicts). It feeds delayed-label features and never changes a past decision.
type Feedback struct {
	ID     string
	TSText string
	TS     int64 // Unix milliseconds: when the verdict became known
	Fraud  bool
}
