//! Anti-entropy (placeholder, filled in below).
