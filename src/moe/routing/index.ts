// Routing recorder and replay (issue 28).
export * from './hook.js';
export * from './record.js';
export * from './recorder.js';
export * from './recording-file.js';
export * from './replay.js';
