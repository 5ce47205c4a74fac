// The access server; see Server.swift.
