import KeylessCLI

// Every command, with the full toolkit (ArgumentParser, NIO, AsyncHTTPClient, jwt-kit, Foundation).
// Users run `keyless`, a small launcher that answers cached credential_process calls itself and
// hands everything else to this program (same process: execv).
await KeylessEntry.run()
