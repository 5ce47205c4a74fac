// The policy model; see Policy.swift.
