// forceExit: after every test had passed, this jest process has spun forever inside Node's own exit (seen here under gdb:
// FreeEnvironment → Environment::CleanupHandles looping on uv_run over one referenced, inactive TCP handle, one of the
// many sockets these tests open and kill); CI hung 85 minutes on it. process.exit skips that cleanup.
module.exports = { ...require('../../jest.preset.js'), displayName: 'e2e', rootDir: __dirname, roots: ['<rootDir>/src'], forceExit: true };
