// The client against small local HTTP servers (no platform): wait(), the event iterator, downloads, image helpers.
module.exports = { ...require('../../jest.preset.js'), displayName: 'sdk', rootDir: __dirname, roots: ['<rootDir>/src'] };
