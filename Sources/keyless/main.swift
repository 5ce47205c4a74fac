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

// `keyless` is a launcher. It links only FoundationEssentials, swift-crypto and the secret store, so
// that the cached credential_process answer (the call the AWS CLI, SDKs and Terraform make over and
// over) starts no event loop, makes no network call and loads no full Foundation. Everything else is
// `keyless-cli`, installed beside it, which replaces this process (execv: same PID, same stdio).
let arguments = Array(CommandLine.arguments.dropFirst())
let environment = Environment.process
if let status = FastPath.run(arguments, environment: environment, now: Date()) {
    exit(status)
}
let cli = Launcher.companionPath(environment: environment)
let argv = ["keyless"] + arguments
let cArguments = argv.map { strdup($0) } + [nil]
execv(cli, cArguments)
let message =
    "keyless: cannot start \(cli): \(String(cString: strerror(errno))) (launcher)\n  → Install keyless-cli next to keyless or in ../libexec/keyless/ from its directory (both come from the same build or package: reinstall it), or set KEYLESS_CLI to its path.\n"
_ = message.withCString { write(2, $0, strlen($0)) }
exit(2)
