// The umbrella module: `import TernaryQuant` gives the whole shipped library, as before the split.
// Import a single module instead to depend on less (e.g. `TernaryQuantFormats` reads and writes
// checkpoints without linking OpenCL). See docs/ARCHITECTURE.md for what each module is for.
@_exported import TernaryQuantCore
@_exported import TernaryQuantFormats
@_exported import TernaryQuantOpenCL
@_exported import TernaryQuantPipeline
