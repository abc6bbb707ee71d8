package fstaid

import (
	"context"
	"log/slog"
)

// loggerKey carries the Monitor's logger (with the check or handler name)
// to built-in checks and handlers.
type loggerKey struct{}

func withLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, l)
}

func loggerFrom(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return discardLogger
}

var discardLogger = slog.New(slog.DiscardHandler)
