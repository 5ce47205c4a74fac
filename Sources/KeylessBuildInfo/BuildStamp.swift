// scripts/package replaces this file in its own copy of the sources; keep the two names and their types.
enum BuildStamp {
    static let commit: String? = nil
    static let swiftVersion: String? = nil
}
