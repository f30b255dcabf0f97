package main

import (
	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/pipeline/config"
)

// sinkBuilder returns the sinks of one kind that a config asks for (none is fine). Each sink
// plug-in registers one from an init function in its own wire_<name>.go file, so adding a
// sink touches no other file of this package.
type sinkBuilder func(cfg *config.Config, schema *pipeline.FeatureSchema) ([]pipeline.Sink, error)

// sinkBuilders are called in registration order for every engine that build wires.
var sinkBuilders []sinkBuilder

func registerSink(b sinkBuilder) { sinkBuilders = append(sinkBuilders, b) }
