// Environment schemas, the log line format and the tracing switch (no service needed).
module.exports = { ...require('../../jest.preset.js'), displayName: 'config', rootDir: __dirname, roots: ['<rootDir>/src'] };
