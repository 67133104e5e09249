// Integration tests against s3rver (an S3-protocol server in Node) over HTTP with the real minio client.
module.exports = { ...require('../../jest.preset.js'), displayName: 'storage', rootDir: __dirname, roots: ['<rootDir>/src'] };
