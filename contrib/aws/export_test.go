package aws

// Exports for tests only.

// Moved reports whether every move ended moved or in place.
func (r *Report) Moved() bool {
	for _, m := range r.Moves {
		if m.State != MoveMoved && m.State != MoveInPlace {
			return false
		}
	}
	return r.Error == ""
}
