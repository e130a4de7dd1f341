// ESM entry: the same functions as the CommonJS entry (one copy of the module state).
import cjs from './index.js';

export const { getLoadablePath, load, loadAsDefaultVfs, openNode, issueToken, LIBRARY_ENV, DEFAULT_VFS_ENV } = cjs;
export default cjs;
