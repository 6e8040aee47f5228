package proxy

import (
	"context"
	"log/slog"
	"time"
)

// Outcome is what happened to one request, reported to Options.Observe.
type Outcome struct {
	Certificate string // the certificate asked for (header or route); "" for none
	Presented   bool   // its material was offered upstream (it exists and is enabled)
	Method      string
	Host        string // as the client asked, without port
	Upstream    string // host:port dialled; "" when the proxy answered on its own
	TLS         bool   // TLS was originated upstream
	Tunnel      bool   // a CONNECT tunnel
	Status      int    // status sent to the client
	Code        string // error code (see Classify); "" on success
	Warning     string // why the certificate was not presented, when it was not
	Duration    time.Duration
	BytesIn     int64 // request body bytes read from the client
	BytesOut    int64 // response body bytes written to the client
	Handshake   bool  // the request opened a new TLS connection
	Resumed     bool  // the TLS session of its connection was resumed
}

func (ex *exchange) outcome(status int, bytesOut int64) Outcome {
	if status == 0 && ex.code != "" {
		status = Status(ex.code)
	}
	handshake, resumed := ex.hs.handshook()
	return Outcome{
		Certificate: ex.certName,
		Presented:   ex.sent,
		Method:      ex.method,
		Host:        ex.host,
		Upstream:    ex.upstream,
		TLS:         ex.useTLS,
		Tunnel:      ex.tunnel,
		Status:      status,
		Code:        ex.code,
		Warning:     ex.warning,
		Duration:    time.Since(ex.start),
		BytesIn:     ex.bytesIn.Load(),
		BytesOut:    bytesOut,
		Handshake:   handshake,
		Resumed:     resumed || ex.resumed,
	}
}

// finish writes the request's log line, counts it and reports its outcome.
func (p *Proxy) finish(ex *exchange, status int, bytesOut int64) {
	if ex.code == CodeRequestCanceled && p.cutting.Load() {
		ex.code = CodeShutdownCut
	}
	o := ex.outcome(status, bytesOut)
	p.logOutcome(ex, o)
	p.metrics.record(ex, o)
	if p.observe != nil {
		p.observe(o)
	}
}

// Values of the certificate_note log field, which says why a request presented
// no certificate.
const (
	noteDisabled = "disabled" // the certificate asked for is disabled
	noteUnknown  = "unknown"  // the certificate asked for does not exist
	noteNoRoute  = "no route" // no header named one and no route gave one
	noteTunnel   = "tunnel"   // a CONNECT tunnel cannot carry one
)

// appendCertificateFields appends the log fields that say which certificate was
// presented and, when none was, why: the name asked for goes in
// certificate_requested.
func (ex *exchange) appendCertificateFields(attrs []slog.Attr) []slog.Attr {
	if ex.sent {
		return append(attrs, slog.String("certificate", ex.certName),
			slog.String("certificate_note", ""))
	}
	note := ""
	switch {
	case !ex.routed:
	case ex.tunnel && ex.certName != "":
		note = noteTunnel
	case ex.certName == "":
		note = noteNoRoute
	case ex.cert == nil:
		note = noteUnknown
	default:
		note = noteDisabled
	}
	attrs = append(attrs, slog.String("certificate", ""), slog.String("certificate_note", note))
	if ex.certName != "" {
		attrs = append(attrs, slog.String("certificate_requested", ex.certName))
	}
	return attrs
}

// logOutcome writes the one line per request, with fixed field names. Header
// values are never logged, only the certificate name that the routing header
// carries; the error text is Go's, which holds addresses but no header.
func (p *Proxy) logOutcome(ex *exchange, o Outcome) {
	level, msg := slog.LevelInfo, "request"
	if o.Tunnel {
		msg = "tunnel"
	}
	if o.Code != "" || o.Warning != "" {
		level = slog.LevelWarn
	}
	if !p.log.Enabled(context.Background(), level) {
		return // building the fields costs a tenth of a request's allocations
	}
	// Room for every field, so that the line is built in one allocation.
	attrs := append(ex.appendCertificateFields(make([]slog.Attr, 0, 17)),
		slog.String("certificate_source", ex.certSource),
		slog.String("method", o.Method),
		slog.String("host", o.Host),
		slog.String("upstream", o.Upstream),
		slog.Bool("tls", o.TLS),
		slog.Int("status", o.Status),
		slog.String("error_code", o.Code),
		slog.Float64("duration_ms", milliseconds(o.Duration)),
		slog.Int64("bytes_in", o.BytesIn),
		slog.Int64("bytes_out", o.BytesOut),
		slog.Bool("resumed", o.Resumed),
	)
	if ex.user != "" {
		attrs = append(attrs, slog.String("proxy_user", ex.user))
	}
	if o.Warning != "" {
		attrs = append(attrs, slog.String("warning", o.Warning))
	}
	if ex.err != nil {
		attrs = append(attrs, slog.String("error", ex.err.Error()))
	}
	p.log.LogAttrs(context.Background(), level, msg, attrs...)
}

// milliseconds rounds d to the microsecond.
func milliseconds(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}
