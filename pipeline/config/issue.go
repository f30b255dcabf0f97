package config

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Issue is one problem found in a config: where it is and what is wrong.
type Issue struct {
	File   string // the config file's name as given to Load or Parse; "" when unknown
	Line   int    // 1-based line of the offending key or value; 0 when not from the file
	Column int    // 1-based column; 0 when not known
	Path   string // the field's dotted path, such as "engine.partitions" or "windows.durations[2]"
	Msg    string // the complete message, usually starting with the path
}

// String formats the issue as "file: line N: msg", leaving out the parts it lacks.
func (i Issue) String() string {
	var b strings.Builder
	if i.File != "" {
		b.WriteString(i.File)
		b.WriteString(": ")
	}
	if i.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(i.Line))
		b.WriteString(": ")
	}
	b.WriteString(i.Msg)
	return b.String()
}

// Error is the error Load, Parse and Validate return for a config with problems. It holds
// every problem found, not just the first, in file order.
type Error struct {
	Issues []Issue
}

// Error prints one issue a line, as "file: line N: msg".
func (e *Error) Error() string {
	lines := make([]string, len(e.Issues))
	for i, is := range e.Issues {
		lines[i] = is.String()
	}
	return strings.Join(lines, "\n")
}

// sortIssues orders issues by position; issues without a line (validation of fields left
// at their defaults) go last, in the order they were found.
func sortIssues(issues []Issue) {
	slices.SortStableFunc(issues, func(a, b Issue) int {
		if (a.Line == 0) != (b.Line == 0) {
			if a.Line == 0 {
				return 1
			}
			return -1
		}
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
}
