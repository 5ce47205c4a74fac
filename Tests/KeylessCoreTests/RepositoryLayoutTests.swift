import Foundation
import Testing

/// The package's targets and their dependencies on each other, read from `Package.swift` as text.
struct PackageTargets {
    /// Target name → the package's own targets it depends on.
    var dependencies: [String: Set<String>] = [:]
    /// Names of test targets.
    var tests: Set<String> = []

    init(manifest: String) {
        // Each target declaration runs from `.target(name:`/`.executableTarget(name:`/`.testTarget(name:` to the next one.
        let declaration = #/\.(target|executableTarget|testTarget)\(\s*name:\s*"([^"]+)"/#
        let starts = manifest.matches(of: declaration)
        for (index, start) in starts.enumerated() {
            let end = index + 1 < starts.count ? starts[index + 1].range.lowerBound : manifest.endIndex
            let name = String(start.output.2)
            if start.output.1 == "testTarget" { tests.insert(name) }
            dependencies[name] = []
            let body = manifest[start.range.upperBound..<end]
            // Products are `.product(name: …)`; the package's own targets are bare strings.
            let products = body.matches(of: #/\.product\(\s*name:\s*"[^"]+",\s*package:\s*"[^"]+"\s*\)/#).map(\.range)
            for quoted in body.matches(of: #/"([^"]+)"/#)
            where !products.contains(where: { $0.contains(quoted.range.lowerBound) }) {
                dependencies[name, default: []].insert(String(quoted.output.1))
            }
        }
        let names = Set(dependencies.keys)
        for name in names { dependencies[name] = dependencies[name]!.intersection(names).subtracting([name]) }
    }
}

extension PackageTargets {
    /// Whether `from` depends on `to`, directly or through other targets.
    func reaches(_ from: String, _ to: String) -> Bool {
        var seen: Set<String> = [], stack = [from]
        while let next = stack.popLast() {
            for dependency in dependencies[next] ?? [] where seen.insert(dependency).inserted {
                stack.append(dependency)
            }
        }
        return seen.contains(to)
    }
}

@Suite("Repository layout: the README's table and docs/ARCHITECTURE.md match Package.swift")
struct RepositoryLayoutTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func read(_ path: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
    }

    @Test("the manifest reader finds targets, their dependencies and test targets (a check of the check)")
    func readerWorks() throws {
        let package = PackageTargets(manifest: try Self.read("Package.swift"))
        #expect(package.dependencies["keyless"] == ["KeylessCore", "KeylessFastPath"])
        #expect(package.dependencies["KeylessCore"] == [])
        #expect(package.dependencies["KeylessIdPServer"]?.contains("KeylessIdP") == true)
        #expect(package.tests.contains("KeylessCoreTests"))
        #expect(package.dependencies.count > 20)
    }

    @Test(
        "the two servers share only KeylessHTTPServer: neither depends on the other, directly or through another target"
    )
    func serversApart() throws {
        let package = PackageTargets(manifest: try Self.read("Package.swift"))
        let reaches = package.reaches
        #expect(!reaches("KeylessAccessServer", "KeylessIdPServer"))
        #expect(!reaches("KeylessIdPServer", "KeylessAccessServer"))
        #expect(!reaches("KeylessAccessServer", "KeylessIdP"), "the access server does not link the provider")
        #expect(reaches("KeylessAccessServer", "KeylessHTTPServer") && reaches("KeylessIdPServer", "KeylessHTTPServer"))
    }

    @Test(
        "the client side reaches neither server, nor the provider, nor its storage; only the commands wire them together"
    )
    func clientApart() throws {
        let package = PackageTargets(manifest: try Self.read("Package.swift"))
        for part in [
            "KeylessAccessServer", "KeylessIdPServer", "KeylessHTTPServer", "KeylessIdP", "KeylessStorage",
            "KeylessPolicy",
        ] {
            #expect(!package.reaches("KeylessClient", part), "KeylessClient reaches \(part)")
            #expect(package.reaches("KeylessCLI", part), "the commands wire \(part)")
        }
        #expect(package.reaches("KeylessCLI", "KeylessClient"))
    }

    @Test("the README's layout table names every library and executable target, and no other")
    func readmeTable() throws {
        let package = PackageTargets(manifest: try Self.read("Package.swift"))
        let readme = try Self.read("README.md")
        let section = try #require(readme.range(of: "\n## Layout\n")).upperBound
        let rest = readme[section...]
        let table = rest.range(of: "\n## ").map { rest[..<$0.lowerBound] } ?? rest
        let listed = Set(table.matches(of: #/^\| `([^`]+)` \|/#.anchorsMatchLineEndings()).map { String($0.output.1) })
        let targets = Set(package.dependencies.keys).subtracting(package.tests)
        #expect(
            listed == targets,
            "missing: \(targets.subtracting(listed).sorted()); not targets: \(listed.subtracting(targets).sorted())")
    }

    @Test(
        "docs/ARCHITECTURE.md draws exactly the dependencies of Package.swift (KeylessCore and test-only targets aside)"
    )
    func architectureDrawing() throws {
        let package = PackageTargets(manifest: try Self.read("Package.swift"))
        let document = try Self.read("docs/ARCHITECTURE.md")
        let drawn = Set(
            document.matches(of: #/^\s*(\w+)(?:\["[^"]*"\])? --> (\w+)\s*$/#.anchorsMatchLineEndings()).map {
                "\($0.output.1) -> \($0.output.2)".replacingOccurrences(of: "keyless_cli", with: "keyless-cli")
            })
        let left = Set(package.dependencies.keys.filter { $0 == "KeylessCore" || $0.hasPrefix("KeylessTest") }).union(
            package.tests)
        var declared: Set<String> = []
        for (target, dependencies) in package.dependencies where !left.contains(target) {
            for dependency in dependencies where !left.contains(dependency) {
                declared.insert("\(target) -> \(dependency)")
            }
        }
        #expect(!drawn.isEmpty)
        #expect(
            drawn == declared,
            "not drawn: \(declared.subtracting(drawn).sorted()); drawn but not declared: \(drawn.subtracting(declared).sorted())"
        )
    }
}
