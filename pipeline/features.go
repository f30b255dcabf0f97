package pipeline

import "fmt"

// FeatureSchema names the features the engine computes and gives each a fixed index into
// Eval.Features. Scorer factories declare their features on it while the engine is built;
// after that it is read-only and safe to share between partitions.
type FeatureSchema struct {
	names []string
	index map[string]int
}

// NewFeatureSchema returns an empty schema.
func NewFeatureSchema() *FeatureSchema {
	return &FeatureSchema{index: make(map[string]int)}
}

// Declare adds a feature and returns its index. Declaring a name twice is a programming
// error between two scorers, reported as an error naming the feature.
func (s *FeatureSchema) Declare(name string) (int, error) {
	if _, dup := s.index[name]; dup {
		return 0, fmt.Errorf("feature %q declared twice", name)
	}
	s.index[name] = len(s.names)
	s.names = append(s.names, name)
	return len(s.names) - 1, nil
}

// Index returns the index of a declared feature.
func (s *FeatureSchema) Index(name string) (int, bool) {
	i, ok := s.index[name]
	return i, ok
}

// Names returns the declared features in index order. The caller must not modify it.
func (s *FeatureSchema) Names() []string { return s.names }

// Len is the number of declared features.
func (s *FeatureSchema) Len() int { return len(s.names) }
