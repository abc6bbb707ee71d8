package fstaid

// validator is implemented by built-in checks and handlers whose
// construction can fail (a bad command line); New reports the problem.
type validator interface{ validate() error }
