package s3batch

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// position is what Position encodes. Done holds only the finished keys above Floor, so it
// stays small however many objects the prefix holds.
type position struct {
	Bucket string   `json:"bucket"`
	Prefix string   `json:"prefix"`
	Floor  string   `json:"floor,omitempty"` // every key <= Floor is finished
	Done   []string `json:"done,omitempty"`  // finished keys above Floor, sorted
	Key    string   `json:"key,omitempty"`   // the object being read, "" between objects
	ETag   string   `json:"etag,omitempty"`  // its ETag
	Row    int64    `json:"row,omitempty"`   // rows of it already read
}

// Position is where the source resumes after the last batch it returned: the finished
// objects and how many rows of the current one were read.
func (s *Source) Position() ([]byte, error) {
	p := position{Bucket: s.bucket, Prefix: s.prefix, Floor: s.floor}
	p.Done = make([]string, 0, len(s.done))
	for k := range s.done {
		p.Done = append(p.Done, k)
	}
	sort.Strings(p.Done)
	if c := s.cur; c != nil && c.row > 0 {
		p.Key, p.ETag, p.Row = c.key, c.etag, c.row
	}
	return json.Marshal(p)
}

// seekTimeout bounds the HeadObject that Seek makes (Seek has no context).
const seekTimeout = 30 * time.Second

// Seek moves the source to a position that Position returned. An object that was being
// read is resumed at the row after the last one returned, provided it still has the ETag
// it had; if it was overwritten or deleted since, Seek fails.
func (s *Source) Seek(pos []byte) error {
	var p position
	if err := json.Unmarshal(pos, &p); err != nil {
		return fmt.Errorf("bad s3batch position: %w", err)
	}
	if p.Bucket != s.bucket || p.Prefix != s.prefix {
		return fmt.Errorf("the checkpoint read s3://%s/%s, this source reads s3://%s/%s: point the source back at it, or start without the checkpoint",
			p.Bucket, p.Prefix, s.bucket, s.prefix)
	}
	if s.cur != nil && s.cur.rows != nil {
		s.cur.rows.close()
	}
	s.cur, s.pending, s.listed = nil, nil, false
	s.floor = p.Floor
	s.done = make(map[string]time.Time, len(p.Done))
	for _, k := range p.Done {
		if k > p.Floor {
			s.done[k] = time.Time{}
		}
	}
	if p.Key == "" || p.Row <= 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(s.life, seekTimeout)
	defer cancel()
	h, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(p.Key)})
	if err != nil {
		if isNotFound(err) {
			return fmt.Errorf("%s, read up to row %d at the checkpoint, no longer exists: restore it, or start without the checkpoint", s.url(p.Key), p.Row)
		}
		return fmt.Errorf("resume %s: %w", s.url(p.Key), err)
	}
	if etag := aws.ToString(h.ETag); etag != p.ETag {
		return fmt.Errorf("%s changed since the checkpoint (ETag %s, the checkpoint read %s up to row %d): the rows read and the rows left would come from different files; restore the object, or start without the checkpoint",
			s.url(p.Key), etag, p.ETag, p.Row)
	}
	s.cur = &current{object: object{key: p.Key, etag: p.ETag, size: aws.ToInt64(h.ContentLength), modified: aws.ToTime(h.LastModified)}, row: p.Row}
	return nil
}
