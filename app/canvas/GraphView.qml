// A ready-to-use graph view: the GraphCanvas, its captions (a QML overlay kept in place while
// panning: the canvas's caption model gives item coordinates) and the hover tooltip.
import QtQuick
import QtQuick.Controls
import Circuitscope.Canvas

Item {
    id: root

    property alias source: canvas.source
    property alias canvas: canvas
    property alias zoom: canvas.zoom
    property alias centerX: canvas.centerX
    property alias centerY: canvas.centerY
    property color captionColor: "#202020"
    property color captionBackground: "#d0ffffff"
    property int captionPixelSize: 11
    property bool captionsVisible: true
    // The axes, pinned to the bottom (tokens) and the left (layers) while zooming and panning.
    property color axisColor: "#5a6170"
    property color axisBackground: "#eef0f3"
    property int axisPixelSize: 11
    readonly property bool hasAxes: columnRepeater.count > 0
    // Captions only above this zoom (they overlap when the graph is tiny).
    property real captionMinZoom: 0.35

    signal nodeClicked(int slot, int graphIndex, string id, int modifiers)
    signal nodeDoubleClicked(int slot, int graphIndex, string id, int modifiers)
    signal backgroundClicked()

    function fitToView() { canvas.fitToView() }
    function centerOnId(id) { return canvas.centerOnId(id) }

    GraphCanvas {
        id: canvas
        objectName: "graphCanvas"
        anchors.fill: parent
        onNodeClicked: (slot, graphIndex, id, modifiers) => root.nodeClicked(slot, graphIndex, id, modifiers)
        onNodeDoubleClicked: (slot, graphIndex, id, modifiers) => root.nodeDoubleClicked(slot, graphIndex, id, modifiers)
        onBackgroundClicked: root.backgroundClicked()
        fitLeft: root.hasAxes ? layerAxis.width : 0
        fitBottom: root.hasAxes ? tokenAxis.height : 0
    }

    Item {
        id: captionLayer
        objectName: "captionLayer"
        anchors.fill: parent
        clip: true
        visible: root.captionsVisible && canvas.zoom >= root.captionMinZoom

        Repeater {
            model: canvas.captions
            delegate: Text {
                visible: model.shown // no caption over another or over the axes
                // Right of the node, or left of it where the right would leave the view.
                x: model.x + model.radius + 3 + width <= root.width ? model.x + model.radius + 3
                                                                    : Math.max(0, model.x - model.radius - 3 - width)
                y: model.y - height / 2
                text: model.text
                color: root.captionColor
                font.pixelSize: root.captionPixelSize
                textFormat: Text.PlainText
                elide: Text.ElideRight
                width: Math.min(implicitWidth, 220)
                Rectangle {
                    anchors.fill: parent
                    anchors.margins: -1
                    z: -1
                    radius: 2
                    color: root.captionBackground
                }
            }
        }
    }

    Rectangle {
        id: tokenAxis
        objectName: "tokenAxis"
        visible: root.hasAxes
        anchors.left: parent.left
        anchors.right: parent.right
        anchors.bottom: parent.bottom
        height: root.axisPixelSize + 10
        color: root.axisBackground
        clip: true
        Repeater {
            id: columnRepeater
            model: canvas.columnTicks
            delegate: Text {
                objectName: "tokenTick"
                // Each token under its column, as wide as the column is on screen.
                width: Math.max(0, 2 * model.radius - 2)
                x: model.x - width / 2
                anchors.verticalCenter: parent.verticalCenter
                // Whole, or with room for a few characters before the ellipsis; else nothing.
                visible: (implicitWidth <= width || width >= 28) && x + width > layerAxis.width
                text: model.text
                textFormat: Text.PlainText
                elide: Text.ElideRight
                horizontalAlignment: Text.AlignHCenter
                font.pixelSize: root.axisPixelSize
                color: root.axisColor
            }
        }
    }
    Rectangle {
        id: layerAxis
        objectName: "layerAxis"
        visible: root.hasAxes
        anchors.left: parent.left
        anchors.top: parent.top
        anchors.bottom: tokenAxis.top
        width: 34
        color: root.axisBackground
        clip: true
        Repeater {
            model: canvas.rowTicks
            delegate: Text {
                objectName: "layerTick"
                y: model.y - height / 2
                width: layerAxis.width - 6
                text: model.text
                textFormat: Text.PlainText
                horizontalAlignment: Text.AlignRight
                font.pixelSize: root.axisPixelSize
                color: root.axisColor
            }
        }
    }

    ToolTip {
        id: tip
        parent: root
        visible: canvas.hoveredNode >= 0 && canvas.hoveredText.length > 0
        text: canvas.hoveredText
        x: Math.min(Math.max(0, canvas.hoveredPosition.x + 14), Math.max(0, root.width - width))
        y: Math.min(Math.max(0, canvas.hoveredPosition.y + 14), Math.max(0, root.height - height))
        delay: 300
    }
}
