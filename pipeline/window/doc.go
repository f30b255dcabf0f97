// Package window keeps keyed, exact sliding windows over event time: for each key (a card,
// an account) it answers "how many events, what sum, what largest amount and how many
// distinct merchants in the last 1h, 24h, 7d, 30d ending at this event". It is pure: no
// I/O, no wall clock, no goroutines. One partition worker owns a Store; it is not safe for
// concurrent use.
//
// # Windows
//
// Window d at time t is the half-open interval (t-d, t] of event time in Unix
// milliseconds: an event exactly d old is out, an event at t is in. Observe counts the
// event it adds in every window. Events with equal timestamps are all kept. An event
// earlier than its key's newest (out of order) is inserted in time order, so later
// queries see it where it belongs, and its own stats are those of the window ending at its
// own timestamp: every held event at or before it, including ones with an equal timestamp
// that arrived earlier. Time is event time only: neither Observe nor Expire reads a clock.
//
// # Memory and cost
//
// Each key keeps its newest Config.MaxEvents events exactly, in a ring buffer in time
// order. When one more arrives, the oldest is folded into a coarse bucket of its hour of
// event time (BucketWidth, aligned to Unix hours) holding the count, sum and max of the
// events folded into it and the first and last of their timestamps. Buckets and events
// that are at or before the key's newest event minus the longest duration are dropped, so a
// key holds at most MaxEvents events (24 bytes each) and ceil(longest/1h)+1 buckets (at
// most 64 bytes each with their running totals): at the defaults (256 events, 30d) at most
// about 6 KiB plus 45 KiB, the latter only for a key with events in every hour of the
// last 30 days beyond its newest 256. A typical key with a few events a day holds a few
// hundred bytes. Keys idle for Config.TTL of event time are evicted by Expire.
//
// Observe and Peek find the newest event at or before t by binary search, then walk back
// once over the exact events inside the longest window (at most MaxEvents), emitting the
// windows shortest first as the walk passes their starts. Distinct values are counted in
// that walk from a bit per buffered event, set when a later event of the key has the same
// value, for windows that end at or after the key's newest event (the in-order case) and
// keys of up to 256 buffered events; otherwise with a scratch hash set owned by the Store
// and emptied in O(1). Keys are found through an Index, a flat hash table that reads no
// key bytes. A window's buckets are
// found by binary search and added in O(log n) from running totals and a stack of suffix
// maxima. Neither allocates in steady state (Observe allocates when a key
// is new or while its buffers grow to their caps).
//
// # Error once a key overflows
//
// While a key has had at most MaxEvents events, every window is exact. After that, a window adds the exact
// events it holds and every bucket whose first and last timestamps both lie in the window.
// It never counts an event outside the window; it misses only the events of a bucket that
// straddles one of the window's ends:
//
//   - the far end, t-d: at most one bucket, so the window misses at most the key's
//     events that lie in the window and in the hour of event time holding t-d. Count and
//     Sum are short by at most that bucket's count and sum, and Max can be below the true
//     max only if that maximum is in that bucket. For a 24h window this is at most one
//     hour's worth of events, at its oldest end. For a window not much longer than an
//     hour the same bound can be most of the window: a 1h window is exact while the key
//     has at most MaxEvents events in about an hour, and may otherwise count little more
//     than its exact events, so choose MaxEvents above the peak events per key per
//     shortest window that must stay exact.
//   - the near end, t: only when t is earlier than the oldest exactly buffered event of
//     the key (a query, or an event, reaching back past its whole buffer), and then at most
//     the key's events in the window and in the hour holding t. Never for an event that is
//     not earlier than the key's newest.
//   - Also only for such a t earlier than the key's newest event: events at or before
//     newest minus the longest duration have been dropped and are missed.
//
// Distinct counts only the exactly buffered events of the window (and the event being
// observed): it is exact while the window's events are all among the key's MaxEvents
// newest, and a lower bound otherwise, never above the true count. The previous event
// that Observe returns is found among exactly buffered events only: for an event earlier
// than every buffered event of an overflowed key it reports none.
//
// Snapshots (MarshalBinary, UnmarshalBinary) hold the configuration and every key's events
// and buckets, versioned and checksummed with CRC32-C, for checkpoints; a restored Store
// answers exactly as the one that was saved.
package window
