module.exports = { ...require('../../jest.preset.js'), displayName: 'diffusion', rootDir: __dirname, roots: ['<rootDir>/src'] };
