// The wire types are part of the engine's API: every `import MPTCPStack`
// sees them too.
@_exported import MPTCPWire
