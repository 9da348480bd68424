package store

import (
	"context"
	"strconv"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/client-go/util/retry"

	apiv1 "github.com/octohq/octo/api/v1"
)

// ObservabilitySettings is metadata.observability of an upload, and the
// observability of PATCH …/script-settings, as wrangler sends its
// [observability] section.
type ObservabilitySettings struct {
	Enabled          *bool    `json:"enabled"`
	HeadSamplingRate *float64 `json:"head_sampling_rate"`
	Logs             *struct {
		Enabled          *bool    `json:"enabled"`
		HeadSamplingRate *float64 `json:"head_sampling_rate"`
	} `json:"logs"`
}

// Observability is the Workers Logs setting o asks for: logs are kept when
// enabled (and logs.enabled is not false), for the share logs.head_sampling_rate
// or head_sampling_rate (default 1) of the invocations. A rate outside 0..1
// is refused.
func (o *ObservabilitySettings) Observability() (*apiv1.Observability, error) {
	if o == nil {
		return nil, nil
	}
	out := &apiv1.Observability{Enabled: o.Enabled != nil && *o.Enabled}
	rate := o.HeadSamplingRate
	if l := o.Logs; l != nil {
		if l.Enabled != nil && !*l.Enabled {
			out.Enabled = false
		}
		if l.HeadSamplingRate != nil {
			rate = l.HeadSamplingRate
		}
	}
	if rate != nil {
		if *rate < 0 || *rate > 1 {
			return nil, invalid("observability head_sampling_rate must be from 0 to 1, not %v", *rate)
		}
		if *rate < 1 {
			out.HeadSamplingRate = strconv.FormatFloat(*rate, 'f', -1, 64)
			if len(out.HeadSamplingRate) > 8 { // at most 6 decimals
				out.HeadSamplingRate = strconv.FormatFloat(*rate, 'f', 6, 64)
			}
		}
	}
	return out, nil
}

// SetObservability stores the script's Workers Logs setting on its release
// (nil: off).
func (s *Store) SetObservability(ctx context.Context, a Account, script string, o *apiv1.Observability) error {
	unlock := s.locks.lock(a, script)
	defer unlock()
	return s.setObservabilityLocked(ctx, a, script, o)
}

// setObservabilityLocked is SetObservability for a caller holding the
// script's lock.
func (s *Store) setObservabilityLocked(ctx context.Context, a Account, script string, o *apiv1.Observability) error {
	if o != nil && !o.Enabled {
		o = nil
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		rel, err := s.Release(ctx, a, script)
		if err != nil {
			return err
		}
		if equality.Semantic.DeepEqual(rel.Spec.Observability, o) {
			return nil
		}
		rel.Spec.Observability = o
		return s.k8s.Update(ctx, rel)
	})
}
