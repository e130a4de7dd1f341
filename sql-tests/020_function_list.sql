-- Goal: pin the exact list of ha_* functions every connection gets after the load, including
-- connections opened after it (registered by the auto-extension hook).
.load ./libdqlite_vfs
.open file:later.db?vfs=ha
SELECT name, narg FROM pragma_function_list WHERE name LIKE 'ha\_%' ESCAPE '\' ORDER BY name;
