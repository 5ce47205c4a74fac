import KeylessCLI
import KeylessCore
import KeylessFastPath
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// The cached credential_process answer comes first: no argument parser, no event loop, no network.
if let status = FastPath.run(Array(CommandLine.arguments.dropFirst()), environment: .process, now: Date()) {
    exit(status)
}
await KeylessEntry.run()
