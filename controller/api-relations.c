/* api-relations.c: AWX's many-to-many sub-lists (/groups/<id>/hosts/, /groups/<id>/children/,
 * /instance_groups/<id>/instances/, ...): a paginated GET, and POST {"id": N} to associate,
 * {"id": N, "disassociate": true} to remove (204), or a new object body to create and associate. */
#include <inttypes.h>

#include "api.h"
#include "drover/log.h"

static int get_parent(controller *c, const api_relation *rel, int64_t id, json_t **ret, http_response *resp) {
        int q = storage_obj_get(c->storage, rel->parent->type, id, ret);
        if (q == -ENOENT) {
                api_not_found(resp);
                return 1;
        }
        if (q < 0) {
                api_storage_error(resp, q, rel->parent->endpoint);
                return 1;
        }
        return 0;
}

int api_rel_list(controller *c, http_request *req, http_response *resp, const api_relation *rel) {
        _cleanup_json_ json_t *parent = NULL, *ids_json = json_array();
        _cleanup_free_ int64_t *ids = NULL;
        size_t n = 0;
        int q;

        if (!ids_json)
                return -ENOMEM;
        if (get_parent(c, rel, req->ids[0], &parent, resp))
                return 0;
        q = storage_rel_list(c->storage, rel->rel, req->ids[0], rel->reverse, &ids, &n);
        if (q < 0)
                return api_storage_error(resp, q, "relations");
        if (n == 0)
                return http_respond(resp, 200, json_pack("{s:i,s:n,s:n,s:[]}", "count", 0, "next", "previous", "results"));
        if (n > API_MAX_FILTER_VALUES)      /* too many for one SQL IN (...): filtered in memory */
                return api_obj_list_ids(c, req, resp, rel->child, ids, n);
        for (size_t i = 0; i < n; i++)
                if (json_array_append_new(ids_json, json_integer(ids[i])) < 0)
                        return -ENOMEM;
        storage_filter f = { .field = "id", .op = SF_IN, .value = ids_json };
        return api_obj_list(c, req, resp, rel->child, &f, 1);
}

/* 1 if group `to` is `from` or one of its descendants (breadth-first, bounded). */
static int reaches(controller *c, int64_t from, int64_t to) {
        _cleanup_free_ int64_t *queue = NULL;
        size_t head = 0, tail = 0, cap = 0;
        int q;

        if (from == to)
                return 1;
        queue = malloc(sizeof(int64_t) * 64);
        if (!queue)
                return -ENOMEM;
        cap = 64;
        queue[tail++] = from;
        while (head < tail && head < 100000) {
                _cleanup_free_ int64_t *kids = NULL;
                size_t n = 0;

                q = storage_rel_list(c->storage, SR_GROUP_CHILDREN, queue[head++], false, &kids, &n);
                if (q < 0)
                        return q;
                for (size_t i = 0; i < n; i++) {
                        if (kids[i] == to)
                                return 1;
                        if (tail == cap) {
                                int64_t *nq = realloc(queue, sizeof(int64_t) * cap * 2);
                                if (!nq)
                                        return -ENOMEM;
                                queue = nq;
                                cap *= 2;
                        }
                        queue[tail++] = kids[i];
                }
        }
        return 0;
}

static int rel_change(controller *c, const api_relation *rel, int64_t parent, int64_t child, bool add) {
        int64_t a = rel->reverse ? child : parent, b = rel->reverse ? parent : child;
        int q;

        q = add ? storage_rel_add(c->storage, rel->rel, a, b) : storage_rel_remove(c->storage, rel->rel, a, b);
        if (q >= 0)
                controller_notify(c);     /* instance group membership matters to the scheduler */
        return q;
}

int api_rel_post(controller *c, http_request *req, http_response *resp, const api_relation *rel) {
        _cleanup_json_ json_t *parent = NULL, *body = NULL, *child = NULL;
        json_t *idv, *dis;
        int64_t child_id;
        int q;

        if (get_parent(c, rel, req->ids[0], &parent, resp))
                return 0;
        if (http_request_json_object(req, resp, &body) < 0)
                return 0;
        idv = json_object_get(body, "id");
        dis = json_object_get(body, "disassociate");

        if (!idv || json_is_null(idv)) {
                if (!rel->create_child)
                        return http_respond_field_error(resp, "id", "This field is required.");
                /* create the child in the parent's inventory, then associate it */
                if (json_object_get(parent, "inventory"))
                        json_object_set(body, "inventory", json_object_get(parent, "inventory"));
                q = api_obj_create_body(c, resp, rel->child, body, &child_id);
                if (q < 0 || resp->status != 201)
                        return q;
                q = rel_change(c, rel, req->ids[0], child_id, true);
                if (q < 0)
                        return api_storage_error(resp, q, "relations");
                return 0;
        }
        if (!json_is_integer(idv))
                return http_respond_field_error(resp, "id", "A valid integer is required.");
        child_id = json_integer_value(idv);

        if (dis && json_is_true(dis)) {
                q = rel_change(c, rel, req->ids[0], child_id, false);
                if (q < 0)
                        return api_storage_error(resp, q, "relations");
                resp->status = 204;
                return 0;
        }

        q = storage_obj_get(c->storage, rel->child->type, child_id, &child);
        if (q == -ENOENT)
                return http_respond_detail(resp, 400, "Invalid pk \"%" PRIi64 "\" - object does not exist.", child_id);
        if (q < 0)
                return api_storage_error(resp, q, rel->child->endpoint);
        if (json_object_get(parent, "inventory") && json_object_get(child, "inventory") &&
            !json_equal(json_object_get(parent, "inventory"), json_object_get(child, "inventory")))
                return http_respond_detail(resp, 400, "%s and %s are in different inventories.", rel->parent->label,
                                           rel->child->label);
        if (rel->rel == SR_GROUP_CHILDREN) {
                q = reaches(c, child_id, req->ids[0]);
                if (q < 0)
                        return api_storage_error(resp, q, "relations");
                if (q > 0)
                        return http_respond_detail(resp, 400, "Cyclical Group association.");
        }
        q = rel_change(c, rel, req->ids[0], child_id, true);
        if (q < 0)
                return api_storage_error(resp, q, "relations");
        resp->status = 204;
        return 0;
}
