//! Exact k-subset and categorical distributions (Eq. 3).
