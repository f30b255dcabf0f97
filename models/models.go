// Package models embeds fraudpipe's bundled model artifacts, so that the binary scores with
// its default model without any file beside it. Each model's folder holds the model, its
// model card (MODEL_CARD.md: data, features, parameters, metrics) and a parity fixture;
// train/train.py made them from features computed by `fraudpipe features`.
package models

import _ "embed"

// Default is the bundled default model (default/model.json): XGBoost's JSON format, trained
// on `fraudpipe gen` data with the handbook's protocol. See default/MODEL_CARD.md.
//
//go:embed default/model.json
var Default []byte

// DefaultName is how errors and docs refer to the bundled model.
const DefaultName = "models/default/model.json (bundled)"
