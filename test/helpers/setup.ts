// An unhandled rejection anywhere in a test run is a bug (pg-pool's test/setup.js does the same).
process.on('unhandledRejection', (err) => {
  throw err;
});
