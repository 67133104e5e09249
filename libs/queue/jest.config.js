// The fair-share planner (pure) and the fair queue on a private Redis started by the spec.
module.exports = { ...require('../../jest.preset.js'), displayName: 'queue', rootDir: __dirname, roots: ['<rootDir>/src'] };
