/* api-inventory.c: an inventory as `ansible-inventory --list --export` JSON (what jobs receive
 * and /inventories/<id>/script/ shows): enabled hosts with their variables, groups with hosts,
 * children and vars, "ungrouped", and all.children listing the top-level groups. */
#include <inttypes.h>

#include "api.h"
#include "drover/log.h"

static int list_by_inventory(controller *c, storage_type t, int64_t inventory_id, json_t **ret) {
        _cleanup_json_ json_t *idv = json_integer(inventory_id);
        storage_filter f = { .field = "inventory", .op = SF_EQ, .value = idv };
        storage_query q = { .filters = &f, .n_filters = 1, .order_by = "name" };

        if (!idv)
                return -ENOMEM;
        return storage_obj_list(c->storage, t, &q, ret, NULL);
}

/* Variables text -> object; a broken text (validated on input, so unexpected) counts as empty. */
static json_t *vars_of(const json_t *doc) {
        json_t *v = NULL;

        if (api_parse_vars(json_get_string(doc, "variables", ""), &v) < 0)
                return json_object();
        return v;
}

static json_t *name_list(controller *c, storage_rel rel, int64_t id, const json_t *names) {
        _cleanup_free_ int64_t *ids = NULL;
        json_t *l = json_array();
        size_t n = 0;
        char key[32];

        if (!l || storage_rel_list(c->storage, rel, id, false, &ids, &n) < 0)
                return l;
        for (size_t i = 0; i < n; i++) {
                snprintf(key, sizeof key, "%" PRIi64, ids[i]);
                json_t *name = json_object_get(names, key);
                if (name)
                        json_array_append(l, name);
        }
        return l;
}

int api_inventory_export(controller *c, int64_t inventory_id, json_t **ret) {
        _cleanup_json_ json_t *inv = NULL, *hosts = NULL, *groups = NULL, *out = NULL, *host_names = json_object(),
                              *group_names = json_object(), *grouped = json_object(), *child_groups = json_object();
        json_t *hostvars, *all_children, *ungrouped, *it, *v;
        const char *k;
        size_t i;
        char key[32];
        int q;

        if (!host_names || !group_names || !grouped || !child_groups)
                return -ENOMEM;
        q = storage_obj_get(c->storage, ST_INVENTORY, inventory_id, &inv);
        if (q < 0)
                return q;
        q = list_by_inventory(c, ST_HOST, inventory_id, &hosts);
        if (q < 0)
                return q;
        q = list_by_inventory(c, ST_GROUP, inventory_id, &groups);
        if (q < 0)
                return q;

        out = json_pack("{s:{s:{}},s:{s:[]}}", "_meta", "hostvars", "all", "children");
        if (!out)
                return -ENOMEM;
        hostvars = json_object_get(json_object_get(out, "_meta"), "hostvars");
        all_children = json_object_get(json_object_get(out, "all"), "children");
        v = vars_of(inv);
        if (json_object_size(v) > 0)
                json_object_set(json_object_get(out, "all"), "vars", v);
        json_decref(v);

        json_array_foreach(hosts, i, it) {
                if (!json_get_bool(it, "enabled", true))
                        continue;
                snprintf(key, sizeof key, "%" PRIi64, json_get_int(it, "id", 0));
                json_object_set(host_names, key, json_object_get(it, "name"));
                json_object_set_new(hostvars, json_get_string(it, "name", ""), vars_of(it));
        }
        json_array_foreach(groups, i, it) {
                snprintf(key, sizeof key, "%" PRIi64, json_get_int(it, "id", 0));
                json_object_set(group_names, key, json_object_get(it, "name"));
        }
        json_array_foreach(groups, i, it) {
                int64_t gid = json_get_int(it, "id", 0);
                json_t *g = json_object(), *gh = name_list(c, SR_GROUP_HOSTS, gid, host_names),
                       *gc = name_list(c, SR_GROUP_CHILDREN, gid, group_names), *gv = vars_of(it);
                size_t j;
                json_t *e;

                if (!g || !gh || !gc || !gv) {
                        json_decref(g), json_decref(gh), json_decref(gc), json_decref(gv);
                        return -ENOMEM;
                }
                json_array_foreach(gh, j, e)
                        json_object_set_new(grouped, json_string_value(e), json_true());
                json_array_foreach(gc, j, e)
                        json_object_set_new(child_groups, json_string_value(e), json_true());
                if (json_array_size(gh) > 0)
                        json_object_set(g, "hosts", gh);
                if (json_array_size(gc) > 0)
                        json_object_set(g, "children", gc);
                if (json_object_size(gv) > 0)
                        json_object_set(g, "vars", gv);
                json_decref(gh), json_decref(gc), json_decref(gv);
                if (json_object_size(g) > 0)
                        json_object_set_new(out, json_get_string(it, "name", ""), g);
                else
                        json_decref(g);
        }

        ungrouped = json_array();
        if (!ungrouped)
                return -ENOMEM;
        json_object_foreach(hostvars, k, v)
                if (!json_object_get(grouped, k))
                        json_array_append_new(ungrouped, json_string(k));
        json_array_append_new(all_children, json_string("ungrouped"));
        if (json_array_size(ungrouped) > 0)
                json_object_set_new(out, "ungrouped", json_pack("{s:o}", "hosts", ungrouped));
        else
                json_decref(ungrouped);
        json_array_foreach(groups, i, it) {
                const char *name = json_get_string(it, "name", "");
                if (!json_object_get(child_groups, name) && !streq(name, "ungrouped") && !streq(name, "all"))
                        json_array_append_new(all_children, json_string(name));
        }
        *ret = TAKE_PTR(out);
        return 0;
}

int api_inventory_script(controller *c, http_request *req, http_response *resp) {
        json_t *out = NULL;
        int q;

        q = api_inventory_export(c, req->ids[0], &out);
        if (q == -ENOENT)
                return api_not_found(resp);
        if (q < 0)
                return api_storage_error(resp, q, "inventory export");
        return http_respond(resp, 200, out);
}
